//! The CLI reference: every command's `--help`, kept in one snapshot, so a change to the
//! command line shows up in review (and `completions/` is checked in `config.rs`).

use clap::CommandFactory as _;

use crate::common::TestEnv;

#[test]
fn the_command_definition_is_consistent() {
    custory_mcp::cli::Cli::command().debug_assert();
}

/// Every command path, e.g. `["keys", "create"]`.
fn command_paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    out.push(prefix.to_vec());
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        command_paths(sub, &path, out);
    }
}

#[tokio::test]
async fn cli_reference() {
    let env = TestEnv::new();
    let mut paths = Vec::new();
    command_paths(&custory_mcp::cli::Cli::command(), &[], &mut paths);
    let mut reference = String::new();
    for path in paths {
        let output = env.command().args(&path).arg("--help").output().await.expect("run --help");
        assert!(output.status.success(), "{path:?} --help");
        let title = if path.is_empty() {
            "custory-mcp".to_owned()
        } else {
            format!("custory-mcp {}", path.join(" "))
        };
        reference.push_str(&format!("## {title}\n\n{}\n", String::from_utf8_lossy(&output.stdout)));
    }
    insta::assert_snapshot!("cli_reference", reference);
}

/// `--help` of every command path, as the binary prints it.
async fn every_help(env: &TestEnv, flag: &str) -> Vec<(Vec<String>, String)> {
    let mut paths = Vec::new();
    command_paths(&custory_mcp::cli::Cli::command(), &[], &mut paths);
    let mut helps = Vec::new();
    for path in paths {
        let output = env.command().args(&path).arg(flag).output().await.expect("run --help");
        assert!(output.status.success(), "{path:?} {flag}");
        helps.push((path, String::from_utf8_lossy(&output.stdout).into_owned()));
    }
    helps
}

#[tokio::test]
async fn every_command_shows_an_example_and_serve_only_its_own_options() {
    let env = TestEnv::new();
    for flag in ["-h", "--help"] {
        for (path, help) in every_help(&env, flag).await {
            let example = help
                .split_once("Example")
                .or_else(|| help.split_once("Start here"))
                .map(|(_, after)| after);
            let runs_itself = example.is_some_and(|text| {
                text.lines().any(|line| {
                    line.trim_start().starts_with(&format!("custory-mcp {}", path.join(" ")))
                        || (path.len() == 2 && line.contains(&path.join(" ")))
                })
            });
            assert!(
                runs_itself,
                "`custory-mcp {} {flag}` shows no example of itself:\n{help}",
                path.join(" ")
            );
        }
    }
    // `serve` is the server: the admin client's options are not its own.
    let serve = env.command().args(["serve", "--help"]).output().await.expect("serve --help");
    let serve = String::from_utf8_lossy(&serve.stdout);
    for client_only in ["--server", "--workspace", "--ca-cert"] {
        assert!(!serve.contains(client_only), "serve --help lists {client_only}:\n{serve}");
    }
    let keys = env.command().args(["keys", "list", "--help"]).output().await.expect("keys --help");
    let keys = String::from_utf8_lossy(&keys.stdout);
    for client in ["--server", "--workspace", "--ca-cert"] {
        assert!(keys.contains(client), "keys list --help lacks {client}");
    }
}

#[tokio::test]
async fn bare_custory_mcp_prints_the_help_and_succeeds() {
    let env = TestEnv::new();
    let bare = env.command().output().await.expect("run");
    let help = env.command().arg("--help").output().await.expect("run --help");
    assert_eq!(bare.status.code(), Some(0));
    assert!(bare.stderr.is_empty(), "{}", String::from_utf8_lossy(&bare.stderr));
    let (bare, help) =
        (String::from_utf8_lossy(&bare.stdout), String::from_utf8_lossy(&help.stdout));
    assert!(bare.starts_with("Workspace-scoped MCP keys"), "{bare}");
    assert!(bare.contains("Start here") && bare.contains("  status "), "{bare}");
    // The short help: the same commands as --help lists.
    for command in ["serve", "keys", "workspaces", "status", "import"] {
        assert!(help.contains(&format!("  {command} ")) && bare.contains(&format!("  {command} ")));
    }
}

/// The commands of every help's examples, as a person at an 80-column terminal sees them: each
/// line an example starts with runs a program (a wrapped tail would not), the lines continued
/// with ` \` joined, and each whole command valid shell (`sh -n`).
#[tokio::test]
async fn every_example_is_a_whole_command_at_80_columns() {
    let env = TestEnv::new();
    let programs =
        ["custory-mcp", "printf", "printenv", "pbpaste", "source", "eval", "export", "echo"];
    for flag in ["-h", "--help"] {
        let mut helps = Vec::new();
        command_paths(&custory_mcp::cli::Cli::command(), &[], &mut helps);
        helps.push(Vec::new());
        for path in helps {
            let output = env
                .command()
                .env("COLUMNS", "80")
                .args(&path)
                .arg(flag)
                .output()
                .await
                .expect("run --help");
            let help = String::from_utf8_lossy(&output.stdout).into_owned();
            let Some((_, after)) =
                help.split_once("Examples:\n").or_else(|| help.split_once("Start here"))
            else {
                continue;
            };
            let block = after
                .lines()
                .skip_while(|l| !l.starts_with("  "))
                .take_while(|l| !l.trim().is_empty());
            let mut command = String::new();
            for line in block {
                assert!(line.chars().count() <= 80, "{path:?} {flag}: longer than 80: {line}");
                if command.is_empty() {
                    // The program, after any `NAME=value` the line sets for it.
                    let first = line
                        .split_whitespace()
                        .find(|word| {
                            !word.split_once('=').is_some_and(|(name, _)| {
                                name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                            })
                        })
                        .unwrap_or_default();
                    assert!(
                        programs.contains(&first),
                        "{path:?} {flag}: an example line runs no program (wrapped?): {line:?}\n{help}"
                    );
                }
                command.push_str(line.trim_end_matches('\\'));
                if line.ends_with(" \\") {
                    continue;
                }
                let checked = std::process::Command::new("bash")
                    .args(["-n", "-c", &command])
                    .output()
                    .expect("bash");
                assert!(
                    checked.status.success(),
                    "{path:?} {flag}: not valid shell: {command}\n{}",
                    String::from_utf8_lossy(&checked.stderr)
                );
                command.clear();
            }
            assert!(command.is_empty(), "{path:?} {flag}: a continued line ends the block");
        }
    }
}
