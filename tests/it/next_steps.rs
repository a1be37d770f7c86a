//! Every next step and hint the CLI prints runs exactly as printed: each command is taken from
//! the real binary's stderr and run through `sh -c` (or, where it asks for a confirmation, on a
//! real terminal) with the same home and environment, against a real server. The key's name
//! has a space and both kinds of quote in it, so a command that is not quoted breaks.

use chrono::Duration;
use serde_json::json;

use crate::common::{BIN, Run, Terminal, TestEnv, TestServer, run_piped};

const NAME: &str = r#"Bob's "old" laptop"#;
/// [`NAME`] as one POSIX shell word.
const QUOTED: &str = r#"'Bob'\''s "old" laptop'"#;

/// The `custory-mcp …` commands in `text`: those in backticks, and those that run to the end
/// of a line (cut before a `   (…)` or `   # …` aside).
fn printed_commands(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let quoted: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        let in_ticks: Vec<String> = quoted
            .iter()
            .filter(|c| c.starts_with("custory-mcp "))
            .map(|c| c.to_string())
            .collect();
        if !in_ticks.is_empty() {
            found.extend(in_ticks);
        } else if let Some(at) = line.find("custory-mcp ") {
            let rest = &line[at..];
            let end = [rest.find("   ("), rest.find("   #")].into_iter().flatten().min();
            found.push(rest[..end.unwrap_or(rest.len())].trim_end().to_owned());
        }
    }
    found
}

/// The one printed command that contains `part`.
fn command_with(text: &str, part: &str) -> String {
    let commands: Vec<String> =
        printed_commands(text).into_iter().filter(|c| c.contains(part)).collect();
    match commands.as_slice() {
        [one] => one.clone(),
        _ => panic!("expected one printed command with {part:?}, found {commands:?} in:\n{text}"),
    }
}

/// `line` run by `sh -c` as the user of `server` who ran the CLI: same home and environment,
/// `custory-mcp` on PATH, stdin not a terminal.
async fn sh(env: &TestEnv, server: &TestServer, line: &str, vars: &[(&str, &str)]) -> Run {
    let mut shell = tokio::process::Command::new("sh");
    shell.env_clear();
    for (name, value) in env.command().as_std().get_envs() {
        if let Some(value) = value {
            shell.env(name, value);
        }
    }
    let bin_dir = std::path::Path::new(BIN).parent().expect("the binary's directory");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    shell.env("PATH", path);
    shell.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    shell.envs(vars.iter().copied());
    shell.args(["-c", line]).kill_on_drop(true);
    run_piped(shell, None).await
}

/// The CLI as the same user, not as a shell command.
async fn cli(env: &TestEnv, server: &TestServer, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    cmd.envs(vars.iter().copied()).args(args);
    run_piped(cmd, None).await
}

fn ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
}

#[tokio::test]
async fn a_new_keys_next_steps_run_as_printed() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", NAME, "--expires", "30d", "--save"];
    let created = cli(&env, &server, &args, &[]).await;
    ok(&created, "keys create --save");
    let config = command_with(&created.stderr, " config ");
    let test = command_with(&created.stderr, " test ");
    assert_eq!(config, format!("custory-mcp config cursor --key {QUOTED}"));
    assert_eq!(test, format!("custory-mcp test --key {QUOTED}"));
    for line in [&config, &test] {
        ok(&sh(&env, &server, line, &[]).await, line);
    }

    // `config --write` with the saved key ends with the check of what it wrote.
    let args = ["config", "cursor", "--key", NAME, "--write", "--yes"];
    let written = cli(&env, &server, &args, &[]).await;
    ok(&written, "config --write");
    let test = command_with(&written.stderr, " test");
    assert_eq!(test, format!("custory-mcp test --key {QUOTED}"));
    let checked = sh(&env, &server, &test, &[]).await;
    ok(&checked, &test);
    assert!(checked.stderr.contains("tools/list"), "{}", checked.stderr);

    // Through the environment: the check reads the same variable the client does.
    let token = created.stdout.trim();
    let var = [("CUSTORY_MCP_TOKEN", token)];
    let written = cli(&env, &server, &["config", "cursor", "--write", "--yes"], &var).await;
    ok(&written, "config --write, token in the environment");
    let test = command_with(&written.stderr, " test");
    assert_eq!(test, "custory-mcp test");
    ok(&sh(&env, &server, &test, &var).await, &test);
    // Without it set here, the sentence says to set it first (the bare command would fail).
    let unset = cli(&env, &server, &["config", "claude-code", "--write", "--yes"], &[]).await;
    ok(&unset, "config --write, no token in the environment");
    assert!(unset.stderr.contains("set CUSTORY_MCP_TOKEN to the key's token"), "{}", unset.stderr);
    server.stop().await;
}

#[tokio::test]
async fn the_printed_way_to_merge_a_config_in_runs_and_writes_the_token_where_it_must() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", NAME, "--expires", "30d", "--save"];
    ok(&cli(&env, &server, &args, &[]).await, "keys create --save");

    // Cline cannot read the environment: the way in names the saved key, never a bare --write
    // (which would be refused for want of the token).
    let shown = cli(&env, &server, &["config", "cline"], &[]).await;
    ok(&shown, "config cline");
    let merge = command_with(&shown.stderr, " --write");
    assert_eq!(merge, "custory-mcp config cline --key KEY --write");
    let merge = merge.replace("KEY", QUOTED) + " --yes";
    ok(&sh(&env, &server, &merge, &[]).await, &merge);
    let file = env.home.path().join(".cline/data/settings/cline_mcp_settings.json");
    let written = std::fs::read_to_string(&file).expect("cline's settings");
    assert!(written.contains("Bearer cst_"), "{written}");

    // Cursor reads the environment: the printed command is the snippet's own flags plus --write.
    let shown = cli(&env, &server, &["config", "cursor", "--token-env", "MY_TOKEN"], &[]).await;
    ok(&shown, "config cursor");
    let merge = command_with(&shown.stderr, " --write");
    assert_eq!(merge, "custory-mcp config cursor --token-env MY_TOKEN --write");
    let written = sh(&env, &server, &format!("{merge} --yes"), &[]).await;
    ok(&written, &merge);
    let cursor = std::fs::read_to_string(env.home.path().join(".cursor/mcp.json")).expect("file");
    assert!(cursor.contains("${env:MY_TOKEN}"), "{cursor}");
    // After writing, nothing says to write again.
    assert!(!written.stderr.contains("--write"), "{}", written.stderr);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_keys_hint_rotates_it_as_printed() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", NAME, "--expires", "30d", "--save"];
    ok(&cli(&env, &server, &args, &[]).await, "keys create --save");
    server.store.clock().advance(Duration::days(31));

    let failed = cli(&env, &server, &["test", "--key", NAME], &[]).await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let rotate = command_with(&failed.stderr, " keys rotate ");
    assert_eq!(rotate, format!("custory-mcp keys rotate {QUOTED}"));

    // It asks first, so it runs on a terminal, where the person answers.
    let script = env.terminal_script(&server, &rotate);
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start(&script);
        t.wait_for("The old token stops working at once");
        t.keys(&["y"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    // The rotation moved the saved token to the new key, and its next step checks it.
    let test = command_with(&screen, " test ");
    assert_eq!(test, format!("custory-mcp test --key {QUOTED}"));
    ok(&sh(&env, &server, &test, &[]).await, &test);

    // The audit names the new key as `keys list` does (its prefix), not by an id it never shows.
    let audit = env.admin_json(&server, &["audit"]).await;
    let rotated = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "key.rotated")
        .expect("a key.rotated event")["detail"]
        .as_str()
        .expect("detail")
        .to_owned();
    let listed = env.admin_json(&server, &["keys", "list", "--status", "active"]).await;
    let prefix = listed["keys"][0]["prefix"].as_str().expect("prefix");
    assert!(rotated.contains(prefix) && !rotated.contains("key_"), "{rotated}");
    server.stop().await;
}

#[tokio::test]
async fn empty_places_point_at_a_create_that_runs() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    server.owner().create_workspace(json!({"name": "Empty"})).await;
    let listed = cli(&env, &server, &["--workspace", "empty", "keys", "list"], &[]).await;
    ok(&listed, "keys list");
    let create = command_with(&listed.stderr, " keys create");
    assert!(create.starts_with("custory-mcp --workspace empty keys create"), "{create}");
    let made = sh(&env, &server, &create, &[]).await;
    ok(&made, &create);
    let test = command_with(&made.stderr, " test ");
    ok(&sh(&env, &server, &test, &[]).await, &test);

    // A workspace made by the CLI says the same, and so does its key's next step.
    let made = cli(&env, &server, &["workspaces", "create", "Second"], &[]).await;
    ok(&made, "workspaces create");
    let create = command_with(&made.stderr, " keys create");
    ok(&sh(&env, &server, &create, &[]).await, &create);

    // `--server` given on the command line (not in the environment) is carried along.
    server.owner().create_workspace(json!({"name": "Third"})).await;
    let mut bare = env.command();
    bare.env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    bare.args(["--server", &server.url, "--workspace", "third", "keys", "list"]);
    let listed = run_piped(bare, None).await;
    ok(&listed, "keys list --server");
    let create = command_with(&listed.stderr, " keys create");
    assert!(create.starts_with(&format!("custory-mcp --server {}", server.url)), "{create}");
    let mut shell = tokio::process::Command::new("sh");
    shell.env_clear();
    for (name, value) in env.command().as_std().get_envs() {
        if let Some(value) = value {
            shell.env(name, value);
        }
    }
    let bin_dir = std::path::Path::new(BIN).parent().expect("the binary's directory");
    shell.env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()));
    shell.env("CUSTORY_OWNER_TOKEN", &server.owner_token).args(["-c", &create]);
    let ran = run_piped(shell, None).await;
    assert_eq!(ran.code, 0, "{create}: {}", ran.stderr);
    server.stop().await;
}

/// `test --key` for a revoked key says it was revoked, when, and what replaces it; for a key
/// whose token this machine never had, how to get one here. Each fix runs as printed.
#[tokio::test]
async fn a_revoked_or_unsaved_key_says_why_and_what_to_run() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", NAME, "--expires", "30d", "--save"];
    ok(&cli(&env, &server, &args, &[]).await, "keys create --save");
    ok(&cli(&env, &server, &["keys", "revoke", NAME, "--yes"], &[]).await, "keys revoke");

    let failed = cli(&env, &server, &["test", "--key", NAME], &[]).await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains(r#"was revoked just now ("#), "{}", failed.stderr);
    assert!(!failed.stderr.contains("not saved on this machine"), "{}", failed.stderr);
    let create = command_with(&failed.stderr, " keys create ");
    assert_eq!(create, format!("custory-mcp keys create --name {QUOTED} --expires 30d --save"));
    ok(&sh(&env, &server, &create, &[]).await, &create);
    let test = format!("custory-mcp test --key {QUOTED}");
    ok(&sh(&env, &server, &test, &[]).await, "test --key after the new key");

    // A key made elsewhere (its token never saved here): rotating it with --save fixes that.
    server.owner().create_key("Made elsewhere", "30d", "read-write").await;
    let failed = cli(&env, &server, &["test", "--key", "Made elsewhere"], &[]).await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("is not saved on this machine"), "{}", failed.stderr);
    let rotate = command_with(&failed.stderr, " keys rotate ");
    assert_eq!(rotate, "custory-mcp keys rotate 'Made elsewhere' --save");
    let script = env.terminal_script(&server, &rotate);
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start(&script);
        t.wait_for("The old token stops working at once");
        t.keys(&["y"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let test = command_with(&screen, " test ");
    assert_eq!(test, "custory-mcp test --key 'Made elsewhere'");
    ok(&sh(&env, &server, &test, &[]).await, &test);
    server.stop().await;
}

/// The token in a config file `config --write` wrote, as found by its prefix.
fn cursor_file(env: &TestEnv) -> String {
    std::fs::read_to_string(env.home.path().join(".cursor/mcp.json")).expect("cursor's config")
}

/// `keys rotate` and the config files that hold the old token: listed with the command that
/// updates each (which runs as printed), rewritten with `--rewrite-configs`, or on a terminal
/// when the person says yes.
#[tokio::test]
async fn rotate_puts_the_new_token_in_the_configs_that_held_the_old_one() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", NAME, "--expires", "30d", "--save"];
    let created = cli(&env, &server, &args, &[]).await;
    ok(&created, "keys create --save");
    let first = created.stdout.trim().to_owned();
    let args = ["config", "cursor", "--key", NAME, "--write", "--yes"];
    ok(&cli(&env, &server, &args, &[]).await, "config --write");
    assert!(cursor_file(&env).contains(&first));

    // Not on a terminal, no flag: the file is named, with the command that updates it.
    let rotated = cli(&env, &server, &["keys", "rotate", NAME, "--yes"], &[]).await;
    ok(&rotated, "keys rotate");
    let second = rotated.stdout.trim().to_owned();
    assert!(
        rotated.stderr.contains("the old token, which no longer works, is still in 1 config file")
    );
    assert!(rotated.stderr.contains(".cursor/mcp.json (Cursor)"), "{}", rotated.stderr);
    assert!(cursor_file(&env).contains(&first), "left as it was");
    let update = command_with(&rotated.stderr, " --write --yes");
    assert_eq!(update, format!("custory-mcp config cursor --key {QUOTED} --write --yes"));
    ok(&sh(&env, &server, &update, &[]).await, &update);
    let file = cursor_file(&env);
    assert!(file.contains(&second) && !file.contains(&first), "{file}");

    // --rewrite-configs: done at once, the previous version kept.
    let args = ["keys", "rotate", NAME, "--yes", "--rewrite-configs"];
    let rotated = cli(&env, &server, &args, &[]).await;
    ok(&rotated, "keys rotate --rewrite-configs");
    let third = rotated.stdout.trim().to_owned();
    let file = cursor_file(&env);
    assert!(file.contains(&third) && !file.contains(&second), "{file}");
    let backup =
        std::fs::read_to_string(env.home.path().join(".cursor/mcp.json.bak")).expect("the backup");
    assert!(backup.contains(&second), "{backup}");
    assert!(rotated.stderr.contains("Put the new token in"), "{}", rotated.stderr);
    let test = format!("custory-mcp test --key {QUOTED}");
    ok(&sh(&env, &server, &test, &[]).await, "test after the rewrite");

    // On a terminal it asks.
    let script = env.terminal_script(&server, &format!("custory-mcp keys rotate {QUOTED}"));
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start(&script);
        t.wait_for("The old token stops working at once");
        t.keys(&["y"]);
        t.wait_for("Put the new token in place of the old one there?");
        t.keys(&["y"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!cursor_file(&env).contains(&third), "rewritten: {}", cursor_file(&env));
    ok(&sh(&env, &server, &test, &[]).await, "test after the terminal's rewrite");

    // A token this machine never saved: the command pipes in the new one.
    let other = server.owner().create_key("Piped", "30d", "read-write").await;
    let piped = [("CUSTORY_MCP_TOKEN", other.token.as_str())];
    let line =
        "printenv CUSTORY_MCP_TOKEN | custory-mcp config windsurf --inline-token --write --yes";
    ok(&sh(&env, &server, line, &piped).await, line);
    let rotated = cli(&env, &server, &["keys", "rotate", "Piped", "--yes"], &[]).await;
    ok(&rotated, "keys rotate Piped");
    let update = command_with(&rotated.stderr, " config windsurf");
    assert!(update.contains("--inline-token"), "{update}");
    let line = rotated
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("update it: "))
        .expect("the update line")
        .to_owned();
    let new = rotated.stdout.trim().to_owned();
    ok(&sh(&env, &server, &line, &[("TOKEN", new.as_str())]).await, &line);
    let windsurf =
        std::fs::read_to_string(env.home.path().join(".codeium/windsurf/mcp_config.json"))
            .expect("windsurf's config");
    assert!(windsurf.contains(&new) && !windsurf.contains(&other.token), "{windsurf}");
    server.stop().await;
}

/// The small things: revoking twice succeeds and says when; a token given as KEY is neither
/// echoed nor sent; names match in any case, with a "did you mean" for a near miss; a busy
/// port suggests another fixed port, never port 0.
#[tokio::test]
async fn small_trips_get_a_plain_answer() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", NAME, "--expires", "30d"];
    let created = cli(&env, &server, &args, &[]).await;
    ok(&created, "keys create");
    let token = created.stdout.trim().to_owned();

    let shown = cli(&env, &server, &["keys", "show", &token], &[]).await;
    assert_eq!(shown.code, 2, "{}", shown.stderr);
    assert!(!shown.stderr.contains(&token), "echoed: {}", shown.stderr);
    assert!(shown.stderr.contains("looks like a whole token"), "{}", shown.stderr);
    assert!(shown.stderr.contains(&token[..12]), "named by its prefix: {}", shown.stderr);
    let bearer = format!("Bearer {token}");
    let shown = cli(&env, &server, &["keys", "revoke", &bearer, "--yes"], &[]).await;
    assert_eq!(shown.code, 2, "{}", shown.stderr);
    assert!(!shown.stderr.contains(&token), "echoed: {}", shown.stderr);

    // A token pasted with its quotes, or after "Bearer ": said so, not echoed.
    for pasted in [format!("\"{token}\""), format!("Bearer {token}")] {
        let var = [("CUSTORY_MCP_TOKEN", pasted.as_str())];
        let tested = cli(&env, &server, &["test"], &var).await;
        assert_eq!(tested.code, 1, "{}", tested.stderr);
        assert!(!tested.stderr.contains(&token), "echoed: {}", tested.stderr);
        let said = ["the token is in quotes", "with \"Bearer \" before it"];
        assert!(said.iter().any(|s| tested.stderr.contains(s)), "{}", tested.stderr);
    }

    let upper = NAME.to_uppercase();
    ok(&cli(&env, &server, &["keys", "show", &upper], &[]).await, "a name in another case");
    let near = cli(&env, &server, &["keys", "show", "Bob's old laptop"], &[]).await;
    assert_eq!(near.code, 1, "{}", near.stderr);
    assert!(near.stderr.contains(&format!("did you mean {QUOTED}?")), "{}", near.stderr);

    ok(&cli(&env, &server, &["keys", "revoke", NAME, "--yes"], &[]).await, "revoke");
    let again = cli(&env, &server, &["keys", "revoke", NAME, "--yes"], &[]).await;
    ok(&again, "revoking twice");
    assert!(again.stderr.contains("was already revoked just now ("), "{}", again.stderr);

    // A busy port: another fixed port, runnable, not port 0.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = taken.local_addr().expect("addr").to_string();
    let db = env.home.path().join("busy.db");
    let mut serve = env.command();
    serve.args(["serve", "--listen", &at, "--database", &db.display().to_string()]);
    let refused = run_piped(serve, None).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let hint = refused.stderr.lines().find(|l| l.starts_with("hint:")).expect("a hint");
    assert!(!hint.contains(":0 ") && !hint.contains(":0`"), "{hint}");
    assert!(hint.contains("custory-mcp serve --listen 127.0.0.1:"), "{hint}");
    assert!(hint.contains("--server http://127.0.0.1:"), "{hint}");
    server.stop().await;
}

#[tokio::test]
async fn the_command_a_refused_member_is_given_runs_as_printed() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let admin = server.owner();
    let viewer = admin.add_member("acme", "Dana O'Neil", "viewer").await;
    let create = serde_json::json!({"name": "Dana's laptop", "expires": "30d"});
    let refused = viewer
        .post("/workspaces/acme/mcp-keys")
        .json(&create)
        .expect_error(403, "role_required")
        .await;
    let message = refused["error"]["message"].as_str().expect("message").to_owned();
    let line = message.split('`').nth(1).expect("a command in backticks");
    // An owner (here the administrator) runs it exactly as the message gives it.
    ok(&sh(&env, &server, line, &[]).await, line);
    viewer.post("/workspaces/acme/mcp-keys").json(&create).expect(201).await;
}
