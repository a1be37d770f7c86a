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
