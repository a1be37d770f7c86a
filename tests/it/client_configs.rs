//! `config` for the clients added last (Qwen Code, GitHub Copilot CLI, opencode, Kilo, Crush,
//! Cline, Continue): each file `config --write` makes is read by the client's own code, pinned
//! from npm, against a real server where the client connects from its CLI. opencode, Kilo and
//! Qwen Code connect with the key from the environment (and stop after a revoke); Copilot CLI's
//! own config loader (`copilot mcp get --json`), Cline's (`@cline/core`) and Continue's
//! (`@continuedev/config-yaml`) read the entry back. Crush installs its binary from outside the
//! registry, so its file is checked against Crush's documented format only.
//!
//! Installing the packages (once per target dir, one `npm install`) takes about 105 s cold.

#![allow(clippy::print_stderr, reason = "the tests report what each client showed")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, run_piped};
use crate::conformance::npm_packages;

/// The clients and parsers, pinned.
const CLIENTS: [&str; 6] = [
    "opencode-ai@1.18.33",
    "@kilocode/cli@7.7.7",
    "@qwen-code/qwen-code@0.24.4",
    "@github/copilot@1.0.102",
    "@cline/core@0.0.86",
    "@continuedev/config-yaml@1.42.0",
];

/// The directory whose `node_modules` holds [`CLIENTS`], installing them on first use.
async fn clients() -> PathBuf {
    tokio::task::spawn_blocking(|| npm_packages(&CLIENTS, "the client config tests"))
        .await
        .expect("install task")
}

/// A person's machine with one client: an isolated home, a project folder, the key's token in
/// `CUSTORY_MCP_TOKEN`.
struct Machine {
    env: TestEnv,
    project: PathBuf,
    token: String,
}

impl Machine {
    fn new(key: &Key) -> Self {
        let env = TestEnv::new();
        let project = env.home.path().join("project");
        std::fs::create_dir_all(&project).expect("project dir");
        Self { env, project, token: key.token.clone() }
    }

    /// `custory-mcp config CLIENT --url URL --write --yes` plus `extra`, in the project folder;
    /// returns the file written.
    async fn write_config(&self, server: &TestServer, client: &str, extra: &[&str]) -> PathBuf {
        let mut cmd = self.env.command();
        cmd.args(["config", client, "--url", &server.mcp_url(), "--write", "--yes", "--json"])
            .args(extra)
            .current_dir(&self.project);
        let stdin = extra.contains(&"--inline-token").then_some(format!("{}\n", self.token));
        let run = run_piped(cmd, stdin.as_deref()).await;
        assert_eq!(run.code, 0, "config {client}: {}", run.stderr);
        let out: Value = serde_json::from_str(&run.stdout).expect("--json");
        assert_eq!(out["written"], true, "{out}");
        PathBuf::from(out["path"].as_str().expect("path"))
    }

    /// `program args…` as the client runs on this machine: its home, the project folder, the
    /// token in the environment; returns stdout and stderr together.
    async fn client(&self, program: &Path, args: &[&str]) -> String {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.project)
            .env_clear()
            .env("HOME", self.env.home.path())
            .env("XDG_CONFIG_HOME", self.env.home.path().join(".config"))
            .env("XDG_DATA_HOME", self.env.home.path().join(".local/share"))
            .env("XDG_CACHE_HOME", self.env.home.path().join(".cache"))
            .env("XDG_STATE_HOME", self.env.home.path().join(".local/state"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CUSTORY_MCP_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .env("NO_PROXY", "*")
            .env("CI", "true")
            .kill_on_drop(true);
        let run = tokio::time::timeout(std::time::Duration::from_secs(120), run_piped(cmd, None))
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} did not finish in 120 s", program.display()));
        format!("{}{}", run.stdout, run.stderr)
    }
}

/// A line of `mcp list` output that names the `custory` server, without color codes.
fn custory_line(output: &str) -> String {
    let plain = strip_ansi(output);
    plain
        .lines()
        .find(|line| line.contains("custory"))
        .unwrap_or_else(|| panic!("no custory server listed:\n{plain}"))
        .to_owned()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @–~.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A client's `mcp list` connects with the config `config CLIENT --write` made (the token from
/// the environment, in the client's own syntax), and no longer does once the key is revoked.
async fn lists_connected_then_not_after_a_revoke(
    client: &str,
    program: &str,
    connected: &str,
    expected_file: &str,
) {
    let modules = clients().await;
    let program = modules.join("node_modules/.bin").join(program);
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key(client, "30d", "read-only").await;
    let machine = Machine::new(&key);
    let path = machine.write_config(&server, client, &[]).await;
    assert!(path.ends_with(expected_file), "{client} wrote {}", path.display());
    // The client gives a server a few seconds to answer; on a loaded machine a first try may
    // time out, so a second one is allowed (a config it cannot use fails both).
    let mut listed = machine.client(&program, &["mcp", "list"]).await;
    if !custory_line(&listed).contains(connected) {
        listed = machine.client(&program, &["mcp", "list"]).await;
    }
    let line = custory_line(&listed);
    assert!(line.contains(connected), "{client}: {line}\n{listed}");
    // The key is what connected it: revoked, the same config no longer does.
    owner.revoke(key.info["id"].as_str().expect("id")).await;
    let listed = machine.client(&program, &["mcp", "list"]).await;
    let line = custory_line(&listed);
    assert!(!line.contains(connected), "{client} still connects after a revoke: {line}");
    eprintln!("{client} after a revoke: {line}");
    server.stop().await;
}

#[tokio::test]
async fn opencode_connects_with_its_config_and_stops_after_a_revoke() {
    lists_connected_then_not_after_a_revoke("opencode", "opencode", "connected", "opencode.json")
        .await;
}

#[tokio::test]
async fn kilo_connects_with_its_config_and_stops_after_a_revoke() {
    lists_connected_then_not_after_a_revoke("kilo", "kilo", "connected", "kilo/kilo.json").await;
}

#[tokio::test]
async fn qwen_code_connects_with_its_config_and_stops_after_a_revoke() {
    lists_connected_then_not_after_a_revoke("qwen", "qwen", "Connected", ".qwen/settings.json")
        .await;
}

/// Copilot CLI connects only inside a signed-in session; its own config loader reads our file
/// back (`copilot mcp get custory --json`), both scopes, token by reference.
#[tokio::test]
async fn copilot_cli_reads_its_config_back_in_both_scopes() {
    let modules = clients().await;
    let copilot = modules.join("node_modules/.bin/copilot");
    let server = TestServer::start().await;
    let key = server.owner().create_key("Copilot", "30d", "read-only").await;
    let machine = Machine::new(&key);
    let user = machine.write_config(&server, "copilot", &[]).await;
    assert!(user.ends_with(".copilot/mcp-config.json"), "{}", user.display());
    let shown = machine.client(&copilot, &["mcp", "get", "custory", "--json"]).await;
    let start = shown.find('{').unwrap_or_else(|| panic!("no JSON:\n{shown}"));
    let read: Value = serde_json::Deserializer::from_str(&shown[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON:\n{shown}"));
    let entry = &read["custory"];
    assert_eq!(entry["type"], "http", "{read}");
    assert_eq!(entry["url"], server.mcp_url().as_str());
    assert_eq!(entry["headers"]["Authorization"], "Bearer ${CUSTORY_MCP_TOKEN}");
    assert_eq!(entry["source"], "user");
    assert_eq!(entry["enabled"], true);
    // The project's file is the one Copilot CLI reads in a folder the person trusts (which
    // `config` says after writing it): .mcp.json.
    std::fs::remove_file(&user).expect("remove the user's file");
    let project = machine.write_config(&server, "copilot", &["--scope", "project"]).await;
    assert_eq!(project, machine.project.join(".mcp.json"));
    let listed = machine.client(&copilot, &["mcp", "list"]).await;
    assert!(listed.contains("No MCP servers configured"), "untrusted: {listed}");
    let trust = json!({"trusted_folders": [machine.project]});
    std::fs::write(user.with_file_name("config.json"), trust.to_string()).expect("trust");
    let listed = machine.client(&copilot, &["mcp", "list"]).await;
    assert!(listed.contains("Workspace servers:\n  custory (http)"), "{listed}");
    server.stop().await;
}

/// Runs a Node ES module `script` (source text) with `modules` as where its imports come from.
async fn node_module(modules: &Path, machine: &Machine, script: &str, file: &Path) -> Value {
    let path = modules.join(format!("check-{}.mjs", custory_mcp::token::random_base62(6)));
    std::fs::write(&path, script).expect("write the script");
    let node = which_node();
    let output = machine
        .client(&node, &[path.to_str().expect("utf-8"), file.to_str().expect("utf-8")])
        .await;
    let _ = std::fs::remove_file(&path);
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("the script printed no JSON:\n{output}"));
    serde_json::from_str(line).expect("JSON")
}

fn which_node() -> PathBuf {
    let found = Command::new("sh").args(["-c", "command -v node"]).output().expect("sh");
    PathBuf::from(String::from_utf8_lossy(&found.stdout).trim())
}

/// Cline's own settings loader (`@cline/core`) reads the file `config cline --inline-token
/// --write` makes, at the path it reads by default, as a Streamable HTTP server with our header.
#[tokio::test]
async fn cline_reads_its_settings_file_with_its_own_loader() {
    let modules = clients().await;
    let server = TestServer::start().await;
    let key = server.owner().create_key("Cline", "30d", "read-only").await;
    let machine = Machine::new(&key);
    let path = machine.write_config(&server, "cline", &["--inline-token"]).await;
    let script = r#"
import { resolveMcpServerRegistrations, resolveDefaultMcpSettingsPath } from "@cline/core";
const servers = resolveMcpServerRegistrations({ filePath: process.argv[2] });
console.log(JSON.stringify({ default_path: resolveDefaultMcpSettingsPath(), servers }));
"#;
    let read = node_module(&modules, &machine, script, &path).await;
    assert_eq!(read["default_path"], path.to_str().expect("utf-8"), "the file Cline reads");
    let servers = read["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1, "{read}");
    assert_eq!(servers[0]["name"], "custory");
    assert_eq!(servers[0]["disabled"], false);
    assert_eq!(
        servers[0]["transport"],
        json!({"type": "streamableHttp", "url": server.mcp_url(),
               "headers": {"Authorization": format!("Bearer {}", key.token)}})
    );
    server.stop().await;
}

/// Continue's own parser (`@continuedev/config-yaml`) takes the block file `config continue
/// --write` makes as an `mcpServers` block, with the token as a secret it resolves.
#[tokio::test]
async fn continue_parses_its_block_file_with_its_own_parser() {
    let modules = clients().await;
    let server = TestServer::start().await;
    let key = server.owner().create_key("Continue", "30d", "read-only").await;
    let machine = Machine::new(&key);
    let path = machine.write_config(&server, "continue", &["--scope", "project"]).await;
    assert_eq!(path, machine.project.join(".continue/mcpServers/custory.yaml"));
    let script = r#"
import { parseBlock, parseConfigYaml, getBlockType, getTemplateVariables } from "@continuedev/config-yaml";
import { readFileSync } from "node:fs";
const text = readFileSync(process.argv[2], "utf8");
console.log(JSON.stringify({ type: getBlockType(parseConfigYaml(text)), block: parseBlock(text),
  variables: getTemplateVariables(text) }));
"#;
    let read = node_module(&modules, &machine, script, &path).await;
    assert_eq!(read["type"], "mcpServers", "{read}");
    assert_eq!(read["variables"], json!(["secrets.CUSTORY_MCP_TOKEN"]));
    let servers = read["block"]["mcpServers"].as_array().expect("mcpServers");
    assert_eq!(servers.len(), 1, "{read}");
    assert_eq!(servers[0]["name"], "custory");
    assert_eq!(servers[0]["type"], "streamable-http");
    assert_eq!(servers[0]["url"], server.mcp_url().as_str());
    assert_eq!(
        servers[0]["requestOptions"]["headers"]["Authorization"],
        "Bearer ${{ secrets.CUSTORY_MCP_TOKEN }}"
    );
    server.stop().await;
}

/// Crush's binary comes from outside the npm registry, so it cannot run here: its file is
/// checked against Crush's documented `mcp` format (an `http` server with `url` and `headers`,
/// `$VAR` expanded in header values), in the place it reads (`crush.json` in the project).
#[tokio::test]
async fn crush_gets_its_documented_http_entry_in_the_project() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Crush", "30d", "read-only").await;
    let machine = Machine::new(&key);
    let path = machine.write_config(&server, "crush", &["--scope", "project"]).await;
    assert_eq!(path, machine.project.join("crush.json"));
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("plain JSON");
    let entry = file["mcp"]["custory"].as_object().expect("mcp.custory");
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["headers", "type", "url"], "only keys Crush documents: {file}");
    assert_eq!(entry["type"], "http");
    assert_eq!(entry["url"], server.mcp_url().as_str());
    let header = entry["headers"]["Authorization"].as_str().expect("header");
    assert_eq!(header, "Bearer $CUSTORY_MCP_TOKEN");
    // What Crush's shell expansion makes of it is the key's header, which the server takes.
    let expanded = Command::new("sh")
        .args(["-c", &format!("printf %s \"{header}\"")])
        .env("CUSTORY_MCP_TOKEN", &key.token)
        .output()
        .expect("sh");
    let expanded = String::from_utf8(expanded.stdout).expect("utf-8");
    assert_eq!(expanded, format!("Bearer {}", key.token));
    server.stop().await;
}
