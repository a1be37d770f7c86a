//! `config` and `completions` as a user runs them: the real binary with an isolated HOME, the
//! clients' real files in it.

use std::path::{Path, PathBuf};

use custory_mcp::token::{PlainToken, TokenKind};
use serde_json::Value;

use crate::common::{Run, TestEnv, TestServer, run_piped};

const URL: &str = "https://app.usecustory.com/api/mcp";

/// Runs the binary in `env`, in `cwd` when given, with `stdin` piped in (else an empty pipe:
/// never a terminal).
async fn run_in(env: &TestEnv, cwd: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = env.command();
    cmd.args(args);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut run = run_piped(cmd, stdin).await;
    // Paths under the temp HOME read as `~` so the messages can be compared.
    run.stderr = run.stderr.replace(&env.home.path().display().to_string(), "~");
    run
}

async fn run(env: &TestEnv, args: &[&str]) -> Run {
    run_in(env, None, args, None).await
}

/// `config CLIENT --url URL` plus `extra`.
async fn config(env: &TestEnv, client: &str, extra: &[&str]) -> Run {
    let mut args = vec!["config", client, "--url", URL];
    args.extend_from_slice(extra);
    run(env, &args).await
}

fn home(env: &TestEnv, relative: &str) -> PathBuf {
    env.home.path().join(relative)
}

fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn bak(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn token() -> String {
    PlainToken::generate(TokenKind::Mcp).expose().to_owned()
}

#[tokio::test]
async fn every_client_gets_its_own_format_with_the_token_from_the_environment() {
    let env = TestEnv::new();
    let cases: [(&str, &str, &str); 15] = [
        (
            "cursor",
            "~/.cursor/mcp.json",
            r#"{
  "mcpServers": {
    "custory": {
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${env:CUSTORY_MCP_TOKEN}"
      }
    }
  }
}
"#,
        ),
        (
            "claude-code",
            "~/.claude.json",
            r#"{
  "mcpServers": {
    "custory": {
      "type": "http",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${CUSTORY_MCP_TOKEN}"
      }
    }
  }
}
"#,
        ),
        (
            "claude-desktop",
            "~/.config/Claude/claude_desktop_config.json",
            r#"{
  "mcpServers": {
    "custory": {
      "command": "npx",
      "args": [
        "-y",
        "mcp-remote",
        "https://app.usecustory.com/api/mcp",
        "--header",
        "Authorization:${CUSTORY_AUTH}",
        "--transport",
        "http-only"
      ],
      "env": {
        "CUSTORY_AUTH": "Bearer <token>"
      }
    }
  }
}
"#,
        ),
        (
            "vscode",
            "~/.config/Code/User/mcp.json",
            r#"{
  "servers": {
    "custory": {
      "type": "http",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${input:custory-token}"
      }
    }
  },
  "inputs": [
    {
      "type": "promptString",
      "id": "custory-token",
      "description": "Custory MCP token (cst_…)",
      "password": true
    }
  ]
}
"#,
        ),
        (
            "windsurf",
            "~/.codeium/windsurf/mcp_config.json",
            r#"{
  "mcpServers": {
    "custory": {
      "serverUrl": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${env:CUSTORY_MCP_TOKEN}"
      }
    }
  }
}
"#,
        ),
        (
            "codex",
            "~/.codex/config.toml",
            r#"[mcp_servers.custory]
url = "https://app.usecustory.com/api/mcp"
bearer_token_env_var = "CUSTORY_MCP_TOKEN"
"#,
        ),
        (
            "gemini",
            "~/.gemini/settings.json",
            r#"{
  "mcpServers": {
    "custory": {
      "httpUrl": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${CUSTORY_MCP_TOKEN}"
      }
    }
  }
}
"#,
        ),
        (
            "zed",
            "~/.config/zed/settings.json",
            r#"{
  "context_servers": {
    "custory": {
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer <token>"
      }
    }
  }
}
"#,
        ),
        (
            "qwen",
            "~/.qwen/settings.json",
            r#"{
  "mcpServers": {
    "custory": {
      "httpUrl": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${CUSTORY_MCP_TOKEN}"
      }
    }
  }
}
"#,
        ),
        (
            "copilot",
            "~/.copilot/mcp-config.json",
            r#"{
  "mcpServers": {
    "custory": {
      "type": "http",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${CUSTORY_MCP_TOKEN}"
      },
      "tools": ["*"]
    }
  }
}
"#,
        ),
        (
            "opencode",
            "~/.config/opencode/opencode.json",
            r#"{
  "mcp": {
    "custory": {
      "type": "remote",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer {env:CUSTORY_MCP_TOKEN}"
      },
      "oauth": false
    }
  }
}
"#,
        ),
        (
            "kilo",
            "~/.config/kilo/kilo.json",
            r#"{
  "mcp": {
    "custory": {
      "type": "remote",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer {env:CUSTORY_MCP_TOKEN}"
      },
      "oauth": false
    }
  }
}
"#,
        ),
        (
            "crush",
            "~/.config/crush/crush.json",
            r#"{
  "mcp": {
    "custory": {
      "type": "http",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer $CUSTORY_MCP_TOKEN"
      }
    }
  }
}
"#,
        ),
        (
            "cline",
            "~/.cline/data/settings/cline_mcp_settings.json",
            r#"{
  "mcpServers": {
    "custory": {
      "type": "streamableHttp",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer <token>"
      },
      "disabled": false
    }
  }
}
"#,
        ),
        (
            "continue",
            "~/.continue/mcpServers/custory.yaml",
            r#"name: custory
version: 0.0.1
schema: v1
mcpServers:
  - name: custory
    type: streamable-http
    url: "https://app.usecustory.com/api/mcp"
    requestOptions:
      headers:
        Authorization: "Bearer ${{ secrets.CUSTORY_MCP_TOKEN }}"
"#,
        ),
    ];
    for (client, path, want) in cases {
        let out = config(&env, client, &[]).await;
        assert_eq!(out.code, 0, "{client}: {}", out.stderr);
        assert_eq!(out.stdout, want, "{client}");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("Goes in {path} ")), "{client}: {}", out.stderr);
        match client {
            "claude-desktop" | "zed" | "cline" => {
                assert!(out.stderr.contains("warning: replace <token>"), "{client}: {}", out.stderr)
            }
            "continue" => assert!(
                out.stderr.contains("CUSTORY_MCP_TOKEN=cst_… to ~/.continue/.env"),
                "{}",
                out.stderr
            ),
            "vscode" => {
                assert!(out.stderr.contains("VS Code asks for the token"), "{}", out.stderr)
            }
            _ => assert!(
                out.stderr.contains("export CUSTORY_MCP_TOKEN=cst_…")
                    && out.stderr.contains("keys create --save"),
                "{client}: {}",
                out.stderr
            ),
        }
    }
    // The user's files were only described, not touched.
    assert!(!home(&env, ".cursor").exists());
}

#[tokio::test]
async fn claude_code_also_gets_its_own_command_and_claude_means_claude_code() {
    let env = TestEnv::new();
    let out = config(&env, "claude", &[]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("\"type\": \"http\""), "{}", out.stdout);
    assert!(
        out.stderr.starts_with(
            "note: `claude` is Claude Code, the CLI; for the Claude desktop app run \
             `custory-mcp config claude-desktop`\n"
        ),
        "{}",
        out.stderr
    );
    // Single quotes: the shell must not expand the variable into the file.
    assert!(
        out.stderr.contains(
            "Or let Claude Code add it: claude mcp add --transport http --scope user custory \
             https://app.usecustory.com/api/mcp --header 'Authorization: Bearer ${CUSTORY_MCP_TOKEN}'\n"
        ),
        "{}",
        out.stderr
    );
    let project = config(&env, "claude-code", &["--scope", "project"]).await;
    assert!(project.stderr.contains("--scope project"), "{}", project.stderr);
    let dir = std::env::current_dir().expect("cwd").join(".mcp.json");
    assert!(project.stderr.contains(&format!("Goes in {} ", dir.display())), "{}", project.stderr);
}

/// Claude Code itself (from npm, pinned) runs the command `config claude-code` prints, and
/// writes the entry we meant: checked in the file it wrote, not in our string.
#[tokio::test]
async fn claude_code_runs_the_command_it_is_given() {
    let claude = crate::conformance::claude_code();
    let env = TestEnv::new();
    let out = config(&env, "claude-code", &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Or let Claude Code add it: "))
        .unwrap_or_else(|| panic!("no command in {}", out.stderr))
        .to_owned();
    let bin = claude.parent().expect("bin dir");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env("HOME", env.home.path())
        .env("PATH", path)
        .env_remove("CUSTORY_MCP_TOKEN")
        .output()
        .expect("sh");
    assert!(
        ran.status.success(),
        "{line}\n{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    let written: serde_json::Value =
        serde_json::from_str(&read(&home(&env, ".claude.json"))).expect("Claude Code's file");
    let entry = &written["mcpServers"]["custory"];
    assert_eq!(entry["type"], "http", "{written}");
    assert_eq!(entry["url"], URL);
    assert_eq!(entry["headers"]["Authorization"], "Bearer ${CUSTORY_MCP_TOKEN}");

    // With narrowing headers, Claude Code's own parser takes every --header of the command.
    let out = config(&env, "claude-code", &["--tools", "read,add_comment", "--read-only"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Or let Claude Code add it: "))
        .unwrap_or_else(|| panic!("no command in {}", out.stderr))
        .to_owned();
    // The entry of the first round goes first: `mcp add` refuses a name it already has.
    let _ = std::process::Command::new(&claude)
        .args(["mcp", "remove", "custory", "--scope", "user"])
        .env("HOME", env.home.path())
        .output();
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env("HOME", env.home.path())
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env_remove("CUSTORY_MCP_TOKEN")
        .output()
        .expect("sh");
    assert!(ran.status.success(), "{line}\n{}", String::from_utf8_lossy(&ran.stderr));
    let written: serde_json::Value =
        serde_json::from_str(&read(&home(&env, ".claude.json"))).expect("Claude Code's file");
    let headers = &written["mcpServers"]["custory"]["headers"];
    assert_eq!(headers["X-MCP-Tools"], "read,add_comment", "{written}");
    assert_eq!(headers["X-MCP-Readonly"], "true", "{written}");
}

#[tokio::test]
async fn narrowing_flags_reach_every_clients_config_as_headers() {
    let env = TestEnv::new();
    let flags = ["--tools", "read,add_comment", "--read-only", "--token-env", "MY_TOKEN"];
    for client in [
        "cursor",
        "windsurf",
        "claude-code",
        "vscode",
        "gemini",
        "qwen",
        "copilot",
        "opencode",
        "kilo",
        "crush",
        "continue",
        "codex",
    ] {
        let out = config(&env, client, &flags).await;
        assert_eq!(out.code, 0, "{client}: {}", out.stderr);
        let text = &out.stdout;
        assert!(
            text.contains("X-MCP-Tools") && text.contains("read,add_comment"),
            "{client}: {text}"
        );
        assert!(text.contains("X-MCP-Readonly") && text.contains("true"), "{client}: {text}");
        // The printed way to merge it in keeps the narrowing.
        assert!(
            out.stderr.contains("--tools read,add_comment --read-only --write"),
            "{client}: {}",
            out.stderr
        );
    }
    // JSON clients: the headers beside Authorization, as the client reads its map.
    let cursor: serde_json::Value =
        serde_json::from_str(&config(&env, "cursor", &flags).await.stdout).expect("JSON");
    let headers = &cursor["mcpServers"]["custory"]["headers"];
    assert_eq!(headers["Authorization"], "Bearer ${env:MY_TOKEN}");
    assert_eq!(headers["X-MCP-Tools"], "read,add_comment");
    // A name that is no tool is refused here, not by the server on the client's first call.
    let bad = config(&env, "cursor", &["--tools", "nope"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("\"nope\" is neither a tool nor a group"), "{}", bad.stderr);
}

#[tokio::test]
async fn the_url_defaults_to_the_servers_endpoint_and_other_variables_can_be_named() {
    let env = TestEnv::new();
    let out = run(
        &env,
        &["config", "cursor", "--server", "http://127.0.0.1:9999/", "--token-env", "MY_TOKEN"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\"url\": \"http://127.0.0.1:9999/api/mcp\""), "{}", out.stdout);
    assert!(out.stdout.contains("Bearer ${env:MY_TOKEN}"), "{}", out.stdout);
    assert!(out.stderr.contains("export MY_TOKEN=cst_…"), "{}", out.stderr);

    let codex = config(&env, "codex", &["--token-env", "MY_TOKEN"]).await;
    assert!(codex.stdout.contains("bearer_token_env_var = \"MY_TOKEN\""), "{}", codex.stdout);

    // VS Code takes it, with a warning about versions that do not substitute it in headers.
    let vscode = config(&env, "vscode", &["--token-env", "MY_TOKEN"]).await;
    assert_eq!(vscode.code, 0);
    assert!(vscode.stdout.contains("Bearer ${env:MY_TOKEN}") && !vscode.stdout.contains("inputs"));
    assert!(vscode.stderr.contains("warning: some VS Code versions"), "{}", vscode.stderr);

    // Clients that cannot read the environment say so instead of writing a dead reference.
    for client in ["zed", "claude-desktop"] {
        let out = config(&env, client, &["--token-env", "MY_TOKEN"]).await;
        assert_eq!(out.code, 2, "{client}");
        assert!(out.stderr.contains("hint: pass --inline-token"), "{}", out.stderr);
    }

    for (args, want) in [
        (
            vec!["config", "cursor", "--url", "ftp://x/api/mcp"],
            "error: \"ftp://x/api/mcp\" is not an http(s) URL",
        ),
        (
            vec!["config", "cursor", "--token-env", "MY-TOKEN"],
            "is not an environment variable name",
        ),
        (vec!["config", "notepad"], "invalid value 'notepad'"),
        (vec!["config", "cursor", "--yes"], "--write"),
    ] {
        let out = run(&env, &args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
}

#[tokio::test]
async fn json_output_names_the_client_path_and_format() {
    let env = TestEnv::new();
    let out = run(&env, &["--json", "config", "codex", "--url", URL]).await;
    assert_eq!(out.code, 0);
    let json: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(json["client"], "codex");
    assert_eq!(json["path"], home(&env, ".codex/config.toml").display().to_string());
    assert_eq!(json["format"], "toml");
    assert!(json["content"].as_str().expect("content").starts_with("[mcp_servers.custory]\n"));
    assert!(json["command"].as_str().expect("command").starts_with("codex mcp add custory"));
}

#[tokio::test]
async fn inline_tokens_come_from_stdin_and_are_checked() {
    let env = TestEnv::new();
    let token = token();
    let piped = format!("{token}\n");

    let cursor =
        run_in(&env, None, &["config", "cursor", "--url", URL, "--inline-token"], Some(&piped))
            .await;
    assert_eq!(cursor.code, 0, "{}", cursor.stderr);
    assert!(
        cursor.stdout.contains(&format!("\"Authorization\": \"Bearer {token}\"")),
        "{}",
        cursor.stdout
    );
    assert!(!cursor.stderr.contains(&token), "the token leaked to stderr: {}", cursor.stderr);
    assert!(
        cursor.stderr.contains("warning: this config contains the token itself"),
        "{}",
        cursor.stderr
    );

    // Claude Code's own command is left out rather than printed with the token on stderr.
    let claude =
        run_in(&env, None, &["config", "claude-code", "--inline-token"], Some(&piped)).await;
    assert!(claude.stdout.contains(&format!("Bearer {token}")), "{}", claude.stdout);
    assert!(!claude.stderr.contains(&token) && !claude.stderr.contains("claude mcp add"));

    let codex =
        run_in(&env, None, &["config", "codex", "--url", URL, "--inline-token"], Some(&piped))
            .await;
    assert_eq!(
        codex.stdout,
        format!(
            "[mcp_servers.custory]\nurl = \"{URL}\"\nhttp_headers = {{ Authorization = \"Bearer {token}\" }}\n"
        )
    );

    let desktop = run_in(
        &env,
        None,
        &["config", "claude-desktop", "--url", URL, "--inline-token"],
        Some(&piped),
    )
    .await;
    assert!(
        desktop.stdout.contains(&format!("\"CUSTORY_AUTH\": \"Bearer {token}\"")),
        "{}",
        desktop.stdout
    );
    assert!(!desktop.stderr.contains("replace <token>"), "{}", desktop.stderr);

    let owner = PlainToken::generate(TokenKind::Owner).expose().to_owned();
    let mut typo = token.clone();
    typo.replace_range(10..11, if &token[10..11] == "a" { "b" } else { "a" });
    for (stdin, want) in [
        (
            typo.as_str(),
            "the token on standard input is not valid: the token's checksum does not match",
        ),
        (owner.as_str(), "is the owner credential (csa_…)"),
        ("", "found no token on standard input"),
    ] {
        let out = run_in(&env, None, &["config", "zed", "--inline-token"], Some(stdin)).await;
        assert_eq!(out.code, 1, "{stdin:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{stdin:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn write_merges_into_the_real_file_keeping_everything_else() {
    let env = TestEnv::new();
    let path = home(&env, ".claude.json");
    let before = r#"{
  "numStartups": 12,
  "projects": {
    "/src/app": {
      "mcpServers": {}
    }
  },
  "mcpServers": {
    "github": {
      "type": "http",
      "url": "https://api.githubcopilot.com/mcp/"
    }
  },
  "autoUpdates": true
}
"#;
    put(&path, before);
    #[cfg(unix)]
    let mode_before = mode(&path);

    let out = config(&env, "claude-code", &["--write", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(
        read(&path),
        r#"{
  "numStartups": 12,
  "projects": {
    "/src/app": {
      "mcpServers": {}
    }
  },
  "mcpServers": {
    "github": {
      "type": "http",
      "url": "https://api.githubcopilot.com/mcp/"
    },
    "custory": {
      "type": "http",
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {
        "Authorization": "Bearer ${CUSTORY_MCP_TOKEN}"
      }
    }
  },
  "autoUpdates": true
}
"#
    );
    assert_eq!(read(&home(&env, ".claude.json.bak")), before);
    #[cfg(unix)]
    {
        // The file keeps its mode (issue 31: it was replaced by a 0600 one); the backup is 0600.
        assert_eq!(mode(&path), mode_before);
        assert_eq!(mode(&home(&env, ".claude.json.bak")), 0o600);
    }
    // The diff went to stderr, then where it was written.
    assert!(out.stderr.starts_with("--- ~/.claude.json\n+++ ~/.claude.json\n@@"), "{}", out.stderr);
    assert!(out.stderr.contains("+    \"custory\": {\n"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Wrote ~/.claude.json (the previous version is in ~/.claude.json.bak).")
    );

    // A second run finds nothing to change and leaves the backup alone.
    let again = config(&env, "claude-code", &["--write", "--yes"]).await;
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("already has this entry; nothing to write"), "{}", again.stderr);
    assert_eq!(read(&home(&env, ".claude.json.bak")), before);

    // A changed URL replaces the entry instead of adding a second one.
    let moved = run(
        &env,
        &["config", "claude-code", "--url", "https://other.example/api/mcp", "--write", "--yes"],
    )
    .await;
    assert_eq!(moved.code, 0);
    let now = read(&path);
    assert_eq!(now.matches("\"custory\"").count(), 1, "{now}");
    assert!(now.contains("https://other.example/api/mcp") && now.contains("\"github\""), "{now}");
}

#[tokio::test]
async fn write_creates_a_missing_file_in_a_private_directory() {
    let env = TestEnv::new();
    let out = config(&env, "gemini", &["--write", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = home(&env, ".gemini/settings.json");
    let printed = config(&env, "gemini", &[]).await.stdout;
    assert_eq!(read(&path), printed);
    assert!(
        out.stderr.starts_with("--- /dev/null\n+++ ~/.gemini/settings.json\n"),
        "{}",
        out.stderr
    );
    assert!(!home(&env, ".gemini/settings.json.bak").exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&home(&env, ".gemini")), 0o700);
    }
}

#[tokio::test]
async fn codex_toml_keeps_its_comments_and_layout() {
    let env = TestEnv::new();
    let path = home(&env, ".codex/config.toml");
    put(
        &path,
        r#"# Codex settings
model = "gpt-5"  # the default

[mcp_servers.docs]
# local docs server
command = "docs-mcp"
args = ["--port", "0"]

[profiles.fast]
model = "gpt-5-mini"
"#,
    );
    let out = config(&env, "codex", &["--write", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        read(&path),
        r#"# Codex settings
model = "gpt-5"  # the default

[mcp_servers.docs]
# local docs server
command = "docs-mcp"
args = ["--port", "0"]

[mcp_servers.custory]
url = "https://app.usecustory.com/api/mcp"
bearer_token_env_var = "CUSTORY_MCP_TOKEN"

[profiles.fast]
model = "gpt-5-mini"
"#
    );
}

#[tokio::test]
async fn jsonc_settings_keep_their_comments() {
    let env = TestEnv::new();
    let path = home(&env, ".config/zed/settings.json");
    put(
        &path,
        r#"// Zed settings
{
  "theme": "One Dark", // my favourite
  "context_servers": {
    "local": {"command": "docs-mcp", "args": []},
  },
}
"#,
    );
    let token = token();
    let out = run_in(
        &env,
        None,
        &["config", "zed", "--url", URL, "--inline-token", "--write", "--yes"],
        Some(&token),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        read(&path),
        format!(
            r#"// Zed settings
{{
  "theme": "One Dark", // my favourite
  "context_servers": {{
    "local": {{"command": "docs-mcp", "args": []}},
    "custory": {{
      "url": "https://app.usecustory.com/api/mcp",
      "headers": {{
        "Authorization": "Bearer {token}",
      }},
    }},
  }},
}}
"#
        )
    );
    // The diff on stderr does not show the token.
    assert!(!out.stderr.contains(&token), "{}", out.stderr);
    let shown = format!("Bearer {}…[redacted]", &token[..12]);
    assert!(out.stderr.contains(&shown), "{}", out.stderr);
}

/// Replacing one inline token with another: neither is in the diff, on either side; each is
/// shown by its prefix, so the change is still visible.
#[tokio::test]
async fn the_diff_redacts_the_removed_token_too() {
    let env = TestEnv::new();
    let (old, new) = (token(), token());
    for token in [&old, &new] {
        let args = ["config", "cursor", "--url", URL, "--inline-token", "--write", "--yes"];
        let out = run_in(&env, None, &args, Some(token)).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let args = ["config", "cursor", "--url", URL, "--inline-token", "--write", "--yes"];
    let other = token();
    let out = run_in(&env, None, &args, Some(&other)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains(&new) && !out.stderr.contains(&other), "{}", out.stderr);
    let removed = format!("-        \"Authorization\": \"Bearer {}…[redacted]\"", &new[..12]);
    let added = format!("+        \"Authorization\": \"Bearer {}…[redacted]\"", &other[..12]);
    assert!(out.stderr.contains(&removed), "{}", out.stderr);
    assert!(out.stderr.contains(&added), "{}", out.stderr);
    assert!(!out.stderr.contains(&old));
}

#[tokio::test]
async fn a_malformed_file_is_left_untouched() {
    let env = TestEnv::new();
    let cases = [
        (
            "cursor",
            ".cursor/mcp.json",
            "{\n  \"mcpServers\": {\n    \"a\": {}\n    \"b\": {}\n  }\n}\n",
            "is not valid JSON: expected `,` or `}` at line 4 column 5",
        ),
        // Cursor reads plain JSON: a comment is an error there, not something to keep.
        (
            "cursor",
            ".cursor/mcp.json",
            "{\n  // mine\n  \"mcpServers\": {}\n}\n",
            "is not plain JSON (it has comments or trailing commas): key must be a string at line 2 column 3",
        ),
        (
            "claude-code",
            ".claude.json",
            "{\"mcpServers\": [\"not\", \"an\", \"object\"]}",
            "has a \"mcpServers\" that is not a JSON object",
        ),
        (
            "vscode",
            ".config/Code/User/mcp.json",
            "[]",
            "does not hold a JSON object at the top level",
        ),
        // VS Code's files may have comments, but a missing comma is still an error.
        (
            "vscode",
            ".config/Code/User/mcp.json",
            "{\n  // mine\n  \"servers\": {}\n  \"inputs\": []\n}\n",
            "is not valid JSON: Expected comma on line 3 column 16",
        ),
        ("codex", ".codex/config.toml", "[mcp_servers.docs]\ncommand = \n", "is not valid TOML"),
        (
            "codex",
            ".codex/config.toml",
            "mcp_servers = 3\n",
            "has an mcp_servers that is not a table",
        ),
    ];
    for (client, relative, text, want) in cases {
        let path = home(&env, relative);
        put(&path, text);
        let before = std::fs::read(&path).expect("read");
        let out = config(&env, client, &["--write", "--yes"]).await;
        assert_eq!(out.code, 1, "{client} {text:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("error: ~/{relative} {want}")),
            "{client} {text:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("hint: fix the file (or move it aside)"), "{}", out.stderr);
        assert_eq!(std::fs::read(&path).expect("read"), before, "{client}: the file changed");
        assert!(!bak(&path).exists(), "{client}: a backup was made");
    }
}

#[tokio::test]
async fn writing_without_a_terminal_needs_yes() {
    let env = TestEnv::new();
    let path = home(&env, ".cursor/mcp.json");
    put(&path, "{}\n");
    let out = config(&env, "cursor", &["--write"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("hint: pass --yes"), "{}", out.stderr);
    assert_eq!(read(&path), "{}\n");
    assert!(!home(&env, ".cursor/mcp.json.bak").exists());
}

#[tokio::test]
async fn placeholders_are_not_written_into_real_files() {
    let env = TestEnv::new();
    for client in ["zed", "claude-desktop"] {
        let out = config(&env, client, &["--write", "--yes"]).await;
        assert_eq!(out.code, 2, "{client}: {}", out.stderr);
        assert!(out.stderr.contains("hint: add --inline-token"), "{}", out.stderr);
    }
    assert!(!home(&env, ".config/zed").exists() && !home(&env, ".config/Claude").exists());
}

#[tokio::test]
async fn project_scope_writes_in_the_current_directory() {
    let env = TestEnv::new();
    let project = tempfile::tempdir().expect("project");
    let args = ["config", "claude-code", "--url", URL, "--scope", "project", "--write", "--yes"];
    let out = run_in(&env, Some(project.path()), &args, None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = read(&project.path().join(".mcp.json"));
    assert!(written.contains("Bearer ${CUSTORY_MCP_TOKEN}"), "{written}");
    assert!(!home(&env, ".claude.json").exists());

    let vscode = ["config", "vscode", "--url", URL, "--scope", "project", "--write", "--yes"];
    let out = run_in(&env, Some(project.path()), &vscode, None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(read(&project.path().join(".vscode/mcp.json")).contains("${input:custory-token}"));

    let windsurf = ["config", "windsurf", "--scope", "project"];
    let out = run_in(&env, Some(project.path()), &windsurf, None).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("error: Windsurf has no project config file"), "{}", out.stderr);
}

#[cfg(unix)]
#[tokio::test]
async fn a_project_config_that_is_a_link_is_not_written_through() {
    // A cloned repository can ship `.mcp.json` (or `.vscode/`) as a link to a user's file.
    let env = TestEnv::new();
    let project = tempfile::tempdir().expect("project");
    let elsewhere = home(&env, "notes.json");
    put(&elsewhere, "{\"mine\": true}\n");
    std::os::unix::fs::symlink(&elsewhere, project.path().join(".mcp.json")).expect("link");
    let args = ["config", "claude-code", "--url", URL, "--scope", "project", "--write", "--yes"];
    let out = run_in(&env, Some(project.path()), &args, None).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: remove the link"), "{}", out.stderr);
    assert_eq!(read(&elsewhere), "{\"mine\": true}\n", "the linked file is untouched");

    let outside = tempfile::tempdir().expect("outside");
    std::os::unix::fs::symlink(outside.path(), project.path().join(".vscode")).expect("link");
    let vscode = ["config", "vscode", "--url", URL, "--scope", "project", "--write", "--yes"];
    let out = run_in(&env, Some(project.path()), &vscode, None).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!outside.path().join("mcp.json").exists(), "nothing written through a linked folder");
}

#[tokio::test]
async fn after_a_write_the_clients_own_approval_step_is_named() {
    let env = TestEnv::new();
    let project = tempfile::tempdir().expect("project");
    for (client, scope, says) in [
        (
            "claude-code",
            "project",
            "Claude Code asks before it uses the servers of a project's .mcp.json",
        ),
        ("gemini", "user", "Gemini CLI starts MCP servers only in folders you trust"),
        ("vscode", "project", "VS Code asks you to trust the server"),
        ("copilot", "project", "reads a project's .mcp.json only in a folder you trust"),
    ] {
        let args = ["config", client, "--url", URL, "--scope", scope, "--write", "--yes"];
        let out = run_in(&env, Some(project.path()), &args, None).await;
        assert_eq!(out.code, 0, "{client}: {}", out.stderr);
        let last = out.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("On its next start: ") && last.contains(says),
            "{client}: {}",
            out.stderr
        );
    }
    // A client that needs no approval gets none.
    let out = config(&env, "cursor", &["--write", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("On its next start"), "{}", out.stderr);
}

#[tokio::test]
async fn a_saved_key_can_be_embedded() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let mut create = env.command();
    create
        .env("CUSTORY_SERVER", &server.url)
        .env("CUSTORY_OWNER_TOKEN", &server.owner_token)
        .args(["keys", "create", "--name", "Zed on laptop", "--expires", "30d", "--save"]);
    let created = create.output().await.expect("keys create");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8(created.stdout).expect("utf-8").trim().to_owned();

    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token).args([
        "config",
        "zed",
        "--key",
        "Zed on laptop",
        "--write",
        "--yes",
    ]);
    let out = cmd.output().await.expect("config");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let settings = read(&home(&env, ".config/zed/settings.json"));
    assert!(settings.contains(&format!("\"Authorization\": \"Bearer {token}\"")), "{settings}");
    assert!(settings.contains(&format!("\"url\": \"{}/api/mcp\"", server.url)), "{settings}");
    server.stop().await;
}

/// The committed completion scripts are what `completions SHELL` prints today.
/// `CUSTORY_UPDATE_COMPLETIONS=1 cargo test --test it config::completions` rewrites them.
#[tokio::test]
async fn completions_are_current() {
    let env = TestEnv::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let update = std::env::var_os("CUSTORY_UPDATE_COMPLETIONS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (shell, file) in [
        ("bash", "custory-mcp.bash"),
        ("zsh", "_custory-mcp"),
        ("fish", "custory-mcp.fish"),
        ("powershell", "_custory-mcp.ps1"),
        ("elvish", "custory-mcp.elv"),
    ] {
        let out = run(&env, &["completions", shell]).await;
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("custory-mcp"), "{shell}");
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &out.stdout).expect("write completions");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(out.stdout.as_str()) {
            stale.push(format!(
                "completions/{file} is stale: run `custory-mcp completions {shell} > completions/{file}`"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\n(or CUSTORY_UPDATE_COMPLETIONS=1 cargo test --test it config::completions)",
        stale.join("\n")
    );
}

/// On a real terminal (a private tmux server): `--write` shows the diff and asks before
/// writing; `--inline-token` will not read a token from a terminal.
#[tokio::test]
async fn on_a_terminal_write_asks_first() {
    let env = TestEnv::new();
    let path = home(&env, ".cursor/mcp.json");
    put(&path, "{}\n");
    let command = |args: &str| {
        format!(
            "env -i HOME={} TERM=xterm NO_COLOR=1 {} {args}",
            env.home.path().display(),
            crate::common::BIN
        )
    };
    let write = command("config cursor --write");
    let inline = command("config zed --inline-token");
    tokio::task::spawn_blocking(move || {
        let tmux = crate::common::Terminal::start(&write);
        tmux.wait_for("Write ");
        tmux.keys(&["y"]);
        let screen = tmux.wait_for("EXIT=");
        assert!(screen.contains("+    \"custory\": {") && screen.contains("EXIT=0"), "{screen}");
        drop(tmux);

        let tmux = crate::common::Terminal::start(&inline);
        let screen = tmux.wait_for("EXIT=");
        assert!(screen.contains("EXIT=2") && screen.contains("which is a terminal"), "{screen}");
    })
    .await
    .expect("terminal session");
    assert!(read(&path).contains("\"custory\""));
    assert_eq!(read(&bak(&path)), "{}\n");
}

#[tokio::test]
async fn oauth_configs_carry_the_url_and_no_token_or_header() {
    let env = TestEnv::new();
    for client in [
        "cursor",
        "claude-code",
        "claude-desktop",
        "vscode",
        "windsurf",
        "codex",
        "gemini",
        "zed",
        "qwen",
        "copilot",
        "opencode",
        "kilo",
        "crush",
        "cline",
        "continue",
    ] {
        let out = config(&env, client, &["--oauth"]).await;
        assert_eq!(out.code, 0, "{client}: {}", out.stderr);
        let lower = out.stdout.to_lowercase();
        assert!(out.stdout.contains(URL), "{client}: {}", out.stdout);
        for word in ["authorization", "bearer", "header", "token", "custory_auth"] {
            assert!(!lower.contains(word), "{client} has {word:?}: {}", out.stdout);
        }
        // The snippet parses as the client reads it.
        if client == "codex" {
            let table: toml_edit::DocumentMut = out.stdout.parse().expect("TOML");
            assert_eq!(table["mcp_servers"]["custory"]["url"].as_str(), Some(URL));
        } else if client == "continue" {
            assert!(out.stdout.contains("type: streamable-http\n"), "{}", out.stdout);
        } else {
            let _: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        }
        assert!(out.stderr.contains("serve --oauth"), "{client}: {}", out.stderr);
        // Where the sign-in starts, as each client actually does it: Claude Code, Gemini CLI
        // and Qwen Code open no browser until asked from their interactive UI.
        let starts = match client {
            "claude-code" => "type /mcp, pick custory and choose Authenticate",
            "gemini" => "start `gemini` and type `/mcp auth custory`",
            "qwen" => "start `qwen` and type `/mcp auth custory`",
            "codex" => "`codex mcp login custory`",
            "opencode" => "`opencode mcp auth custory` opens a browser",
            "kilo" => "`kilo mcp auth custory` opens a browser",
            _ => "on first use",
        };
        assert!(out.stderr.contains(starts), "{client}: {}", out.stderr);
        if ["claude-code", "gemini", "qwen"].contains(&client) {
            assert!(!out.stderr.contains("on first use"), "{client}: {}", out.stderr);
        }
    }
    let out = config(&env, "cursor", &["--oauth", "--inline-token"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // Claude Code's own command adds the same header-less entry.
    let claude = crate::conformance::claude_code();
    let out = config(&env, "claude-code", &["--oauth"]).await;
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Or let Claude Code add it: "))
        .unwrap_or_else(|| panic!("no command in {}", out.stderr))
        .to_owned();
    let bin = claude.parent().expect("bin dir");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env("HOME", env.home.path())
        .env("PATH", path)
        .output()
        .expect("sh");
    assert!(ran.status.success(), "{line}\n{}", String::from_utf8_lossy(&ran.stderr));
    let written: serde_json::Value =
        serde_json::from_str(&read(&home(&env, ".claude.json"))).expect("Claude Code's file");
    let entry = &written["mcpServers"]["custory"];
    assert_eq!((entry["type"].as_str(), entry["url"].as_str()), (Some("http"), Some(URL)));
    assert!(entry.get("headers").is_none_or(|h| h.as_object().is_some_and(|h| h.is_empty())));
}

/// `config --write` writes only a regular file (or the file a link points at, when told to
/// follow it): a FIFO is refused at once (no hang), a dangling link is refused, a link is
/// refused without --follow-symlink; a file keeps its mode, a read-only one is left alone, and
/// a change of mode is said.
#[cfg(unix)]
#[tokio::test]
async fn write_touches_only_regular_files_and_keeps_their_mode() {
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let env = TestEnv::new();
    let path = home(&env, ".cursor/mcp.json");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let write = ["--write", "--yes"];

    // A FIFO: refused at once, not read (a read would wait for a writer forever).
    let made = std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(made.success());
    let limit = std::time::Duration::from_secs(20);
    let out = tokio::time::timeout(limit, config(&env, "cursor", &write)).await.expect("no hang");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is a FIFO (named pipe), not a regular file"), "{}", out.stderr);
    std::fs::remove_file(&path).expect("rm fifo");

    // 0640: kept for an entry that holds no token; said and tightened when a token goes in.
    put(&path, "{}\n");
    set_mode(&path, 0o640);
    let out = config(&env, "cursor", &write).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&path), 0o640);
    assert!(!out.stderr.contains("was mode"), "{}", out.stderr);
    let args = ["--inline-token", "--write", "--yes"];
    let out = run_in(
        &env,
        None,
        &[&["config", "cursor", "--url", URL], &args[..]].concat(),
        Some(&token()),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&path), 0o600);
    assert!(
        out.stderr
            .contains("was mode 0640, readable by others; it now holds a token, so it is 0600"),
        "{}",
        out.stderr
    );

    // 0444: read-only, left untouched, with what to do.
    put(&path, "{}\n");
    set_mode(&path, 0o444);
    let out = config(&env, "cursor", &write).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is read-only (mode 0444): it was left untouched"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("chmod u+w"), "{}", out.stderr);
    assert_eq!((read(&path), mode(&path)), ("{}\n".to_owned(), 0o444));
    set_mode(&path, 0o600);
    std::fs::remove_file(&path).expect("rm");

    // A dangling link: refused, nothing made where it points.
    let nowhere = home(&env, "dotfiles/missing.json");
    symlink(&nowhere, &path).expect("link");
    let out = config(&env, "cursor", &write).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("which does not exist"), "{}", out.stderr);
    assert!(
        !nowhere.exists()
            && std::fs::symlink_metadata(&path).expect("link").file_type().is_symlink()
    );
    std::fs::remove_file(&path).expect("rm link");

    // A link to a file: refused without --follow-symlink, written through with it.
    let real = home(&env, "dotfiles/cursor.json");
    put(&real, "{}\n");
    set_mode(&real, 0o640);
    symlink(&real, &path).expect("link");
    let out = config(&env, "cursor", &write).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
    assert!(out.stderr.contains("pass --follow-symlink"), "{}", out.stderr);
    assert_eq!(read(&real), "{}\n");
    let out = config(&env, "cursor", &["--write", "--yes", "--follow-symlink"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(read(&real).contains("custory"), "written through the link");
    assert!(
        std::fs::symlink_metadata(&path).expect("link").file_type().is_symlink(),
        "still a link"
    );
    assert_eq!(mode(&real), 0o640, "its mode kept");
    assert!(out.stderr.contains("is a link: wrote the file it points at"), "{}", out.stderr);
}
