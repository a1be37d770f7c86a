//! Shell completion as a person meets it: bash, zsh and fish on a real terminal (tmux), the
//! script `completions SHELL` prints loaded as the help says, TAB pressed and the screen read.
//! Subcommands, a flag's values, the clients `config` takes, and from the server the key names
//! (inserted so that the command runs) and workspace slugs; nothing shown when the server cannot
//! be reached.

use crate::common::{Terminal, TestEnv, TestServer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// What each shell shows before a command line.
const READY: &str = "ready>";

impl Shell {
    /// The shell, with the environment a user of this server has, started with no startup
    /// file of the machine's: only one that loads the completions as `completions --help` says
    /// (and sets the prompt to [`READY`]).
    fn command(self, env: &TestEnv, server: &TestServer) -> String {
        let dir = env.home.path().join(format!("{self:?}"));
        std::fs::create_dir_all(&dir).expect("the shell's directory");
        let (file, startup) = match self {
            Shell::Bash => (".bashrc", "PS1='ready> '\nsource <(custory-mcp completions bash)\n"),
            Shell::Zsh => (
                ".zshrc",
                "PS1='ready> '\nautoload -U compinit && compinit -u\n\
                 source <(custory-mcp completions zsh)\n",
            ),
            Shell::Fish => (
                "config.fish",
                "function fish_prompt; echo -n 'ready> '; end\n\
                 custory-mcp completions fish | source\n",
            ),
        };
        let path = dir.join(file);
        std::fs::write(&path, startup).expect("the shell's startup file");
        let shell = match self {
            Shell::Bash => format!("bash --noprofile --rcfile {} -i", path.display()),
            Shell::Zsh => "zsh --no-globalrcs -i".to_owned(),
            Shell::Fish => {
                format!("fish --no-config --init-command 'source {}' -i", path.display())
            }
        };
        format!("env -i ZDOTDIR={} {} {shell}", dir.display(), env.terminal_env(server))
    }

    /// The keys that empty the command line. bash's are readline's own (Ctrl-E, Ctrl-U): a
    /// Ctrl-C there is a signal bash may only act on at the next command it runs, which is the
    /// completion function of the next TAB, and that TAB's line would be thrown away. zsh and
    /// fish take Ctrl-C as closing a list of candidates still drawn, and the line with it.
    fn clear(self) -> &'static [&'static str] {
        match self {
            Shell::Bash => &["C-e", "C-u"],
            Shell::Zsh | Shell::Fish => &["C-c"],
        }
    }

    /// The keys that list every candidate: bash lists them at the second TAB.
    fn list(self) -> &'static [&'static str] {
        match self {
            Shell::Bash => &["Tab", "Tab"],
            Shell::Zsh | Shell::Fish => &["Tab"],
        }
    }
}

/// A clean command line on a clear screen. A shell still drawing a list of candidates can take
/// the first clearing keys as closing the list only, so it is asked again until the line is
/// empty.
fn fresh(t: &Terminal, shell: Shell) {
    // Ctrl-C is a signal: on a loaded machine the shell may act on one after text typed later
    // has already reached it, and cancel that line. So each attempt types a mark after it and
    // waits for the mark on a clean line (every key before it handled), then erases it.
    let mut screen = String::new();
    for attempt in 0..10 {
        t.keys(shell.clear());
        t.keys(&["C-l"]);
        let mark = format!("fresh{attempt}");
        t.type_text(&mark);
        let marked = format!("{READY} {mark}");
        let settled = t
            .wait_within(std::time::Duration::from_secs(2), &|s| s.trim() == marked)
            .and_then(|_| {
                t.keys(&["C-u"]);
                t.wait_within(std::time::Duration::from_secs(2), &|s| s.trim() == READY)
            });
        match settled {
            Ok(_) => return,
            Err(last) => screen = last,
        }
    }
    panic!("the shell never came back to an empty line:\n{screen}");
}

fn complete(
    t: &Terminal,
    shell: Shell,
    line: &str,
    keys: &[&str],
    done: impl Fn(&str) -> bool,
) -> String {
    fresh(t, shell);
    t.type_text(line);
    t.keys(keys);
    t.wait_until(&format!("completing {line:?} never finished"), done)
}

async fn completes_in(shell: Shell) {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    let cursor = owner.create_key("Cursor on MacBook", "30d", "read-write").await;
    owner.create_key("Claude Code on CI", "30d", "read-only").await;
    let old = owner.create_key("Old laptop", "30d", "read-write").await;
    owner.revoke(old.id()).await;
    owner.create_workspace(serde_json::json!({"name": "Beta", "slug": "beta"})).await;
    let prefix = cursor.info["prefix"].as_str().expect("prefix").to_owned();
    let command = shell.command(&env, &server);

    tokio::task::spawn_blocking(move || {
        // Tall enough for every client and flag `config` offers (zsh lists them all at once).
        let t = Terminal::start_sized(&command, 100, 60);
        t.wait_for(READY);

        // A subcommand, a flag's value, a client of `config`.
        complete(&t, shell, "custory-mcp keys rot", &["Tab"], |s| {
            s.contains("custory-mcp keys rotate")
        });
        complete(&t, shell, "custory-mcp keys create --expires n", &["Tab"], |s| {
            s.contains("--expires never")
        });
        complete(&t, shell, "custory-mcp config claude-d", &["Tab"], |s| {
            s.contains("config claude-desktop")
        });
        let clients =
            complete(&t, shell, "custory-mcp config ", shell.list(), |s| s.contains("windsurf"));
        assert!(clients.contains("codex") && clients.contains("claude-code"), "{clients}");

        // Key names from the server: the active ones.
        let names =
            complete(&t, shell, "custory-mcp --workspace acme keys revoke ", shell.list(), |s| {
                s.contains("MacBook")
            });
        assert!(names.contains("Claude") && !names.contains("Old"), "{shell:?}:\n{names}");
        // A name with spaces is inserted so that the command runs, and shows that key.
        for line in [
            "custory-mcp --workspace acme keys show Cu",
            "custory-mcp keys show --workspace acme 'Cu",
        ] {
            complete(&t, shell, line, &["Tab"], |s| s.contains("MacBook"));
            t.keys(&["Enter"]);
            // The command has ended when the prompt is back.
            let shown = t.wait_until("the key was never shown", |s| {
                s.contains("Workspace") && s.ends_with(READY)
            });
            assert!(shown.contains(&prefix), "{shell:?}, {line}:\n{shown}");
            assert!(!shown.contains("error"), "{shell:?}, {line}:\n{shown}");
        }

        // Workspace slugs from the server.
        let slugs =
            complete(&t, shell, "custory-mcp --workspace ", shell.list(), |s| s.contains("beta"));
        assert!(slugs.contains("acme"), "{shell:?}:\n{slugs}");

        // A server that cannot be reached: nothing offered, nothing printed, and the shell
        // answers the next key.
        fresh(&t, shell);
        t.type_text("custory-mcp --server http://127.0.0.1:9 --workspace acme keys show Cu");
        t.keys(&["Tab"]);
        t.type_text("#typed");
        let screen = t.wait_for("Cu#typed");
        assert!(!screen.contains("error") && !screen.contains("could not"), "{shell:?}:\n{screen}");
    })
    .await
    .expect("terminal session");
    server.stop().await;
}

#[tokio::test]
async fn bash_completes_commands_values_and_the_servers_names() {
    completes_in(Shell::Bash).await;
}

#[tokio::test]
async fn zsh_completes_commands_values_and_the_servers_names() {
    completes_in(Shell::Zsh).await;
}

#[tokio::test]
async fn fish_completes_commands_values_and_the_servers_names() {
    completes_in(Shell::Fish).await;
}
