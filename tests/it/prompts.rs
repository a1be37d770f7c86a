//! Prompts as a person meets them. A prompt appears only when stdin, stdout and stderr are all
//! terminals, and each is declined by a flag; without a terminal a missing answer is an error
//! naming the flag. At 80 columns a picker's entries and a question fit their line (a wrapped
//! line would be drawn again at each key). Ctrl-C puts the terminal back (cursor, echo), says
//! "cancelled" and exits 130.

use regex::Regex;

use crate::common::{Terminal, TestEnv, TestServer};

/// A name that cannot fit a line of 80 columns beside its prefix.
const LONG: &str =
    "Claude Code on the build machine in the basement rack, second shelf from the top";

#[tokio::test]
async fn a_token_captured_by_the_shell_is_never_asked_about() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let script = env.terminal_script(
        &server,
        r#"
TOKEN=$(custory-mcp keys create --name ci --expires 30d)
echo "captured: ${#TOKEN} $?"
custory-mcp -q keys create --name quiet --expires 30d
echo "quiet: $?"
custory-mcp keys create --name declined --expires 30d --no-save
echo "declined: $?"
custory-mcp keys create --name kept --expires 30d --save --no-save
echo "both: $?"
"#,
    );
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start_sized(&script, 80, 30);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    // The token went to $TOKEN; nothing waited for an answer, nothing claimed it is on screen.
    assert!(screen.contains("captured: 42 0"), "{screen}");
    assert!(screen.contains("quiet: 0") && screen.contains("declined: 0"), "{screen}");
    assert!(!screen.contains("Store the token now?"), "{screen}");
    assert!(screen.contains("The token went to standard output, and only there"), "{screen}");
    // With -q and --no-save the token was on this terminal: the warning stays.
    assert!(screen.contains("this token is shown only once"), "{screen}");
    assert!(screen.contains("both: 2") && screen.contains("--no-save"), "{screen}");
    let keys = server.owner().list_keys("acme", "").await;
    assert_eq!(keys["keys"].as_array().expect("keys").len(), 3, "{keys}");
    server.stop().await;
}

#[tokio::test]
async fn a_picker_at_80_columns_fits_and_ctrl_c_cancels_it() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    let long = owner.create_key(LONG, "30d", "read-write").await;
    owner.create_key("Cursor on MacBook", "30d", "read-write").await;
    owner.create_key("ci", "30d", "read-only").await;
    let prefix = long.info["prefix"].as_str().expect("prefix").to_owned();
    let script = env.terminal_script(&server, "custory-mcp keys revoke");
    let (screen, cancelled, cursor_shown, cursor_hidden) = tokio::task::spawn_blocking(move || {
        let t = Terminal::start_sized(&script, 80, 30);
        t.wait_for("Revoke which key?");
        // The oldest key, the long one, is last: move to it and back, a redraw each time.
        for key in ["Down", "Down", "Up", "Down"] {
            t.keys(&[key]);
        }
        let screen = t.wait_until("the picker never reached the long name", |s| {
            s.lines().any(|line| line.starts_with("❯ Claude Code on the build"))
        });
        let hidden = !t.cursor_visible();
        t.keys(&["C-c"]);
        let cancelled = t.wait_for("EXIT=");
        (screen, cancelled, t.cursor_visible(), hidden)
    })
    .await
    .expect("terminal session");
    // Each entry is drawn once, on one line, with its prefix: the name gave way.
    let entries: Vec<&str> = screen.lines().filter(|l| l.contains("Claude Code on the")).collect();
    assert_eq!(entries.len(), 1, "{screen}");
    assert!(entries[0].contains('…') && entries[0].contains(&prefix), "{screen}");
    assert_eq!(screen.lines().filter(|l| l.contains("Cursor on MacBook")).count(), 1, "{screen}");
    // Ctrl-C: the cursor the picker hid is back, one word says why it stopped, status 130.
    assert!(cursor_hidden, "a picker hides the cursor while it is drawn");
    assert!(cursor_shown, "{cancelled}");
    assert!(cancelled.contains("cancelled") && cancelled.contains("EXIT=130"), "{cancelled}");
    assert!(!cancelled.contains("error"), "{cancelled}");
    let keys = owner.list_keys("acme", "?status=active").await;
    assert_eq!(keys["keys"].as_array().expect("keys").len(), 3, "nothing was revoked");
    server.stop().await;
}

#[tokio::test]
async fn a_question_at_80_columns_is_one_line_before_and_after_the_answer() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let long = server.owner().create_key(LONG, "30d", "read-write").await;
    let prefix = long.info["prefix"].as_str().expect("prefix").to_owned();
    let script = env.terminal_script(&server, &format!("custory-mcp keys revoke {prefix}"));
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start_sized(&script, 80, 30);
        let asked = t.wait_for("(y/n)");
        let questions: Vec<&str> = asked.lines().filter(|l| l.contains("Revoke \"")).collect();
        assert_eq!(questions.len(), 1, "{asked}");
        t.keys(&["n"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    // The answered question replaced the question: one line, the prefix still on it.
    let questions: Vec<&str> = screen.lines().filter(|l| l.contains("Revoke \"")).collect();
    assert_eq!(questions.len(), 1, "{screen}");
    assert!(questions[0].contains(&prefix) && questions[0].ends_with("· no"), "{screen}");
    assert!(screen.contains("Clients using it stop working at once."), "{screen}");
    assert!(screen.contains("nothing was changed") && screen.contains("EXIT=1"), "{screen}");
    server.stop().await;
}

/// Ctrl-C at the password prompt of `login`: the terminal echoes again.
#[tokio::test]
async fn ctrl_c_at_a_password_gives_the_terminal_back() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    // The script goes on after Ctrl-C (`trap`), to read the terminal's mode.
    let script = env.terminal_script(
        &server,
        "trap true INT\ncustory-mcp login\necho \"login: $?\"\nstty -a | tr ' ' '\\n' | grep -x -- '-\\?echo'\n",
    );
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start_sized(&script, 80, 30);
        t.wait_for("Owner credential");
        t.type_text("csa_half");
        t.keys(&["C-c"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("cancelled") && screen.contains("login: 130"), "{screen}");
    assert!(screen.lines().any(|l| l == "echo"), "echo is back on:\n{screen}");
    assert!(!screen.contains("csa_half"), "the password was not echoed:\n{screen}");
    server.stop().await;
}

/// No terminal, no prompt: a clear error naming the flag. Piped stdin, and (at a terminal)
/// stdout piped on.
#[tokio::test]
async fn without_a_terminal_an_error_names_the_flag() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    server.owner().create_key("Laptop", "30d", "read-write").await;
    let cases: [(&[&str], &str); 5] = [
        (&["keys", "create"], "pass --name"),
        (&["keys", "create", "--name", "CI"], "pass --expires"),
        (&["keys", "revoke"], "the KEY to revoke is required"),
        (&["keys", "revoke", "Laptop"], "pass --yes"),
        (&["login"], "pass --token-stdin"),
    ];
    for (args, says) in cases {
        let run = env.admin(&server, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // stdin and stderr on a terminal, stdout into a pipe: still no picker.
    let script = env.terminal_script(
        &server,
        "custory-mcp keys revoke | cat\necho \"revoke: ${PIPESTATUS[0]}\"\n",
    );
    let screen = tokio::task::spawn_blocking(move || {
        Terminal::start_sized(&script, 80, 30).wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("revoke: 2") && !screen.contains("Revoke which key?"), "{screen}");
    assert!(Regex::new("required when not running on a terminal").expect("re").is_match(&screen));
    server.stop().await;
}

/// `keys show` and `keys rotate` pick a key as `keys revoke` does, when KEY is left out on a
/// terminal; `rotate` then confirms (or takes -y) like `revoke`.
#[tokio::test]
async fn every_command_taking_a_key_offers_the_picker() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    owner.create_key("Old laptop", "30d", "read-write").await;
    let newest = owner.create_key("Cursor on MacBook", "30d", "read-write").await;
    let script = env.terminal_script(
        &server,
        "custory-mcp keys show\ncustory-mcp keys rotate -y\necho \"rotate: $?\"\n",
    );
    let (shown, rotated) = tokio::task::spawn_blocking(move || {
        let t = Terminal::start_sized(&script, 100, 30);
        t.wait_for("Show which key?");
        t.keys(&["Down", "Enter"]);
        let shown = t.wait_for("Rotate which key?");
        t.keys(&["Enter"]);
        (shown, t.wait_for("EXIT="))
    })
    .await
    .expect("terminal session");
    assert!(shown.contains("Name          Old laptop"), "{shown}");
    assert!(rotated.contains("rotate: 0"), "{rotated}");
    // The newest key, first in the picker, was the one rotated.
    let old = owner.show_key(newest.id()).await;
    assert_eq!(old["key"]["status"], "revoked", "{old}");
    // Without a terminal: the same error as revoke's, naming what to pass.
    for (args, says) in
        [(&["keys", "show"][..], "the KEY to show"), (&["keys", "rotate"], "the KEY to rotate")]
    {
        let run = env.admin(&server, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{}", run.stderr);
    }
    server.stop().await;
}
