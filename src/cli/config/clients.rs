//! What each MCP client reads: where its file is, what the `custory` entry in it looks like, and
//! what the person has to do next for the token to reach the client.
//!
//! How the token gets there differs per client (checked against each client's docs and issue
//! tracker):
//!
//! | client         | env reference in the file            | default                          |
//! |----------------|--------------------------------------|----------------------------------|
//! | Cursor         | `${env:VAR}`                         | `${env:CUSTORY_MCP_TOKEN}`       |
//! | Windsurf       | `${env:VAR}`                         | `${env:CUSTORY_MCP_TOKEN}`       |
//! | Claude Code    | `${VAR}`                             | `${CUSTORY_MCP_TOKEN}`           |
//! | Gemini CLI     | `$VAR` / `${VAR}`                    | `${CUSTORY_MCP_TOKEN}`           |
//! | Codex          | `bearer_token_env_var = "VAR"`       | `CUSTORY_MCP_TOKEN`              |
//! | VS Code        | `${input:id}` prompt (`${env:VAR}`)  | a password prompt, stored by VS Code |
//! | Claude Desktop | none: `env` values are literal       | `<token>` placeholder            |
//! | Zed            | none documented                      | `<token>` placeholder            |
//! | Qwen Code      | `$VAR` / `${VAR}` (as Gemini CLI)    | `${CUSTORY_MCP_TOKEN}`           |
//! | Copilot CLI    | `${VAR}`                             | `${CUSTORY_MCP_TOKEN}`           |
//! | opencode, Kilo | `{env:VAR}`                          | `{env:CUSTORY_MCP_TOKEN}`        |
//! | Crush          | `$VAR` (shell expansion)             | `$CUSTORY_MCP_TOKEN`             |
//! | Cline          | none: headers are literal            | `<token>` placeholder            |
//! | Continue       | `${{ secrets.VAR }}`, from `.env`    | `${{ secrets.CUSTORY_MCP_TOKEN }}` |

use crate::cli::DEFAULT_TOKEN_ENV;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::ValueEnum as _;
use jsonc_parser::cst::CstInputValue;

use super::merge::{ENTRY_NAME, Entry};
use crate::cli::shared::shell_quote;
use crate::error::CliError;
use crate::token::PlainToken;

/// What stands where the token must go when the client cannot read it from the environment.
pub const PLACEHOLDER: &str = "<token>";
/// The id of VS Code's password prompt.
const VSCODE_INPUT: &str = "custory-token";

/// The clients `config` knows, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientArg {
    /// Cursor
    Cursor,
    /// Claude Code, the CLI
    ClaudeCode,
    /// Claude Code (the name of its command)
    #[value(hide = true)]
    Claude,
    /// The Claude desktop app (through the mcp-remote bridge)
    ClaudeDesktop,
    /// VS Code (Copilot agent mode)
    Vscode,
    /// Windsurf
    Windsurf,
    /// OpenAI Codex CLI
    Codex,
    /// Gemini CLI
    Gemini,
    /// Zed
    Zed,
    /// Qwen Code
    Qwen,
    /// GitHub Copilot CLI
    Copilot,
    /// opencode
    Opencode,
    /// Kilo Code's CLI
    Kilo,
    /// Crush
    Crush,
    /// Cline (its CLI and VS Code extension)
    Cline,
    /// Continue
    Continue,
}

/// A client, with `claude` resolved to Claude Code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Cursor,
    ClaudeCode,
    ClaudeDesktop,
    Vscode,
    Windsurf,
    Codex,
    Gemini,
    Zed,
    Qwen,
    Copilot,
    Opencode,
    Kilo,
    Crush,
    Cline,
    Continue,
}

impl From<ClientArg> for Client {
    fn from(arg: ClientArg) -> Self {
        match arg {
            ClientArg::Cursor => Client::Cursor,
            ClientArg::ClaudeCode | ClientArg::Claude => Client::ClaudeCode,
            ClientArg::ClaudeDesktop => Client::ClaudeDesktop,
            ClientArg::Vscode => Client::Vscode,
            ClientArg::Windsurf => Client::Windsurf,
            ClientArg::Codex => Client::Codex,
            ClientArg::Gemini => Client::Gemini,
            ClientArg::Zed => Client::Zed,
            ClientArg::Qwen => Client::Qwen,
            ClientArg::Copilot => Client::Copilot,
            ClientArg::Opencode => Client::Opencode,
            ClientArg::Kilo => Client::Kilo,
            ClientArg::Crush => Client::Crush,
            ClientArg::Cline => Client::Cline,
            ClientArg::Continue => Client::Continue,
        }
    }
}

impl From<Client> for ClientArg {
    fn from(client: Client) -> Self {
        match client {
            Client::Cursor => ClientArg::Cursor,
            Client::ClaudeCode => ClientArg::ClaudeCode,
            Client::ClaudeDesktop => ClientArg::ClaudeDesktop,
            Client::Vscode => ClientArg::Vscode,
            Client::Windsurf => ClientArg::Windsurf,
            Client::Codex => ClientArg::Codex,
            Client::Gemini => ClientArg::Gemini,
            Client::Zed => ClientArg::Zed,
            Client::Qwen => ClientArg::Qwen,
            Client::Copilot => ClientArg::Copilot,
            Client::Opencode => ClientArg::Opencode,
            Client::Kilo => ClientArg::Kilo,
            Client::Crush => ClientArg::Crush,
            Client::Cline => ClientArg::Cline,
            Client::Continue => ClientArg::Continue,
        }
    }
}

impl ClientArg {
    /// The clients a person picks from, each once (not the `claude` alias), in order.
    pub fn choices() -> impl Iterator<Item = ClientArg> {
        Self::value_variants()
            .iter()
            .copied()
            .filter(|client| client.to_possible_value().is_some_and(|v| !v.is_hide_set()))
    }

    /// The name a person knows it by.
    pub fn name(self) -> &'static str {
        Client::from(self).name()
    }

    /// As typed on the command line.
    pub fn id(self) -> String {
        Client::from(self).id()
    }
}

/// `--scope`: whose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scope {
    /// The user's own config file (every project)
    #[default]
    User,
    /// The project's config file in the current directory (shared with the repository)
    Project,
}

/// How the token reaches the client.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Through an environment variable; `explicit` when `--token-env` named it.
    Env { var: String, explicit: bool },
    /// Written into the file (`--inline-token`).
    Inline(PlainToken),
}

/// A line for stderr after the snippet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Info(String),
    Warn(String),
}

/// Everything `config` needs to know about one client and one way of passing the token.
#[derive(Debug)]
pub struct Plan {
    pub client: Client,
    pub entry: Entry,
    /// The entry holds [`PLACEHOLDER`] where the token must go.
    pub placeholder: bool,
    /// The client's own command that adds the same entry, where it has one.
    pub command: Option<String>,
    /// How the token reaches the client, for stderr.
    pub notes: Vec<Note>,
}

impl Client {
    /// The step the client itself asks for before it runs a newly written server, if any.
    pub fn approval(self, scope: Scope) -> Option<&'static str> {
        match (self, scope) {
            (Client::ClaudeCode, Scope::Project) => Some(
                "Claude Code asks before it uses the servers of a project's .mcp.json: approve \
                 custory when it asks on its next start in this folder (`claude mcp list` shows \
                 it)",
            ),
            (Client::Gemini, _) => Some(
                "Gemini CLI starts MCP servers only in folders you trust: trust the folder when \
                 it asks (`/mcp` in Gemini CLI lists the servers it started)",
            ),
            (Client::Copilot, Scope::Project) => Some(
                "GitHub Copilot CLI reads a project's .mcp.json only in a folder you trust: \
                 trust this one when it asks (`copilot mcp list` then shows custory under \
                 \"Workspace servers\")",
            ),
            (Client::Vscode, _) => Some(
                "VS Code asks you to trust the server when it first starts it, and asks for the \
                 key (custory-token) once: paste the cst_… token there",
            ),
            _ => None,
        }
    }

    /// How a person starts the OAuth sign-in in this client, as a sentence that ends where
    /// the browser opens. Claude Code, Gemini CLI and Qwen Code do not open one by themselves:
    /// their `mcp list` only says the server needs authentication (or is disconnected).
    fn sign_in(self) -> String {
        match self {
            Client::ClaudeCode => "Claude Code does not open a browser by itself (`claude mcp \
                 list` shows custory as needing authentication): start `claude`, type /mcp, pick \
                 custory and choose Authenticate, and a browser opens to sign in."
                .to_owned(),
            Client::Gemini | Client::Qwen => format!(
                "{} does not open a browser by itself (`{} mcp list` shows custory as \
                 disconnected): start `{}` and type `/mcp auth custory`, and a browser opens to \
                 sign in.",
                self.name(),
                self.id(),
                self.id()
            ),
            Client::Codex => {
                "`codex mcp login custory` (in the command above) opens a browser to sign in."
                    .to_owned()
            }
            Client::Opencode | Client::Kilo => {
                format!("`{} mcp auth custory` opens a browser to sign in.", self.id())
            }
            _ => format!("on first use {} opens a browser to sign in.", self.name()),
        }
    }

    /// The id used on the command line and in `--json`.
    pub fn id(self) -> String {
        ClientArg::from(self)
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The name a person knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Client::Cursor => "Cursor",
            Client::ClaudeCode => "Claude Code",
            Client::ClaudeDesktop => "Claude Desktop",
            Client::Vscode => "VS Code",
            Client::Windsurf => "Windsurf",
            Client::Codex => "Codex",
            Client::Gemini => "Gemini CLI",
            Client::Zed => "Zed",
            Client::Qwen => "Qwen Code",
            Client::Copilot => "GitHub Copilot CLI",
            Client::Opencode => "opencode",
            Client::Kilo => "Kilo",
            Client::Crush => "Crush",
            Client::Cline => "Cline",
            Client::Continue => "Continue",
        }
    }

    /// Where the entry goes inside the file, as a person would describe it.
    pub fn location(self) -> &'static str {
        match self {
            Client::Vscode => "under \"servers\"",
            Client::Codex => "as the [mcp_servers.custory] table",
            Client::Zed => "under \"context_servers\"",
            Client::Opencode | Client::Kilo | Client::Crush => "under \"mcp\"",
            Client::Continue => "as its own block file (a list under mcpServers)",
            _ => "under \"mcpServers\"",
        }
    }

    /// The config file for `scope`. The user's files are found from `HOME` (and the platform's
    /// config directory), so a different `HOME` gives different files.
    pub fn path(self, scope: Scope) -> anyhow::Result<PathBuf> {
        match scope {
            Scope::User => self.user_path(),
            Scope::Project => {
                let relative = self.project_path().ok_or_else(|| {
                    CliError::usage(format!("{} has no project config file", self.name()))
                        .hint("drop --scope project to use the user's config file")
                })?;
                let cwd = std::env::current_dir()
                    .context("could not read the current directory for --scope project")?;
                Ok(cwd.join(relative))
            }
        }
    }

    fn project_path(self) -> Option<&'static str> {
        match self {
            Client::Cursor => Some(".cursor/mcp.json"),
            Client::ClaudeCode => Some(".mcp.json"),
            Client::Vscode => Some(".vscode/mcp.json"),
            Client::Codex => Some(".codex/config.toml"),
            Client::Gemini => Some(".gemini/settings.json"),
            Client::Zed => Some(".zed/settings.json"),
            Client::Qwen => Some(".qwen/settings.json"),
            Client::Copilot => Some(".mcp.json"),
            Client::Opencode => Some("opencode.json"),
            Client::Kilo => Some(".kilo/kilo.json"),
            Client::Crush => Some("crush.json"),
            Client::Continue => Some(".continue/mcpServers/custory.yaml"),
            Client::ClaudeDesktop | Client::Windsurf | Client::Cline => None,
        }
    }

    fn user_path(self) -> anyhow::Result<PathBuf> {
        let dirs = directories::BaseDirs::new()
            .context("could not find your home directory (is HOME set?)")?;
        let home = dirs.home_dir();
        // The platform's config directory: $XDG_CONFIG_HOME or ~/.config on Linux,
        // ~/Library/Application Support on macOS, %APPDATA% on Windows.
        let config = dirs.config_dir();
        Ok(match self {
            Client::Cursor => home.join(".cursor").join("mcp.json"),
            Client::ClaudeCode => env_dir("CLAUDE_CONFIG_DIR")
                .map_or_else(|| home.join(".claude.json"), |dir| dir.join(".claude.json")),
            Client::ClaudeDesktop => config.join("Claude").join("claude_desktop_config.json"),
            Client::Vscode => config.join("Code").join("User").join("mcp.json"),
            Client::Windsurf => home.join(".codeium").join("windsurf").join("mcp_config.json"),
            Client::Codex => {
                env_dir("CODEX_HOME").unwrap_or_else(|| home.join(".codex")).join("config.toml")
            }
            Client::Gemini => home.join(".gemini").join("settings.json"),
            Client::Zed => zed_config_dir(home, config).join("settings.json"),
            Client::Qwen => home.join(".qwen").join("settings.json"),
            Client::Copilot => env_dir("COPILOT_HOME")
                .unwrap_or_else(|| home.join(".copilot"))
                .join("mcp-config.json"),
            // opencode, Kilo and Crush read ~/.config on every platform (XDG_CONFIG_HOME when set).
            Client::Opencode => xdg_config(home).join("opencode").join("opencode.json"),
            Client::Kilo => xdg_config(home).join("kilo").join("kilo.json"),
            Client::Crush => xdg_config(home).join("crush").join("crush.json"),
            Client::Cline => {
                home.join(".cline").join("data").join("settings").join("cline_mcp_settings.json")
            }
            Client::Continue => home.join(".continue").join("mcpServers").join("custory.yaml"),
        })
    }
}

/// A directory named by an environment variable, when it is set and not empty.
fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|value| !value.is_empty()).map(PathBuf::from)
}

/// `$XDG_CONFIG_HOME`, else `~/.config`, on every platform (as Node and Go CLIs that follow the
/// XDG convention everywhere read it).
fn xdg_config(home: &Path) -> PathBuf {
    env_dir("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"))
}

/// Zed keeps its settings in ~/.config/zed on macOS too, not in Application Support.
fn zed_config_dir(home: &Path, config: &Path) -> PathBuf {
    if cfg!(target_os = "windows") {
        config.join("Zed")
    } else if cfg!(target_os = "macos") {
        home.join(".config").join("zed")
    } else {
        config.join("zed")
    }
}

/// The entry for `client`, and what the person has to do for the token to reach it.
/// `plan`'s entry with `narrow`'s headers too (`X-MCP-Tools`, `X-MCP-Readonly`): the
/// server narrows each of the client's requests to them, never beyond the key.
pub fn plan(
    client: Client,
    url: &str,
    auth: &Auth,
    scope: Scope,
    narrow: &[(&'static str, String)],
) -> anyhow::Result<Plan> {
    if let Auth::Env { var, explicit: true } = auth
        && matches!(client, Client::ClaudeDesktop | Client::Zed | Client::Cline)
    {
        let why = match client {
            Client::ClaudeDesktop => {
                "Claude Desktop does not expand variables in its config file and starts servers \
                 without your shell's environment"
            }
            Client::Cline => "Cline does not expand environment variables in its MCP headers",
            _ => "Zed does not expand environment variables in context_servers headers",
        };
        return Err(CliError::usage(format!(
            "{} cannot take the token from ${var}: {why}",
            client.name()
        ))
        .hint(
            "pass --inline-token (with --key KEY, or the token on stdin) to write the token itself",
        )
        .into());
    }

    let mut notes = Vec::new();
    let mut placeholder = false;
    let mut command = None;
    let headers = |authorization: String| {
        let mut all = vec![("Authorization".to_owned(), authorization.into())];
        all.extend(narrow.iter().map(|(name, value)| ((*name).to_owned(), value.as_str().into())));
        CstInputValue::Object(all)
    };
    let bearer = |reference: &str| match auth {
        Auth::Inline(token) => format!("Bearer {}", token.expose()),
        Auth::Env { .. } => format!("Bearer {reference}"),
    };

    let entry = match client {
        Client::Cursor | Client::Windsurf => {
            let var = env_var(auth);
            let url_key = if client == Client::Windsurf { "serverUrl" } else { "url" };
            json_entry(
                "mcpServers",
                vec![
                    (url_key, url.into()),
                    ("headers", headers(bearer(&format!("${{env:{var}}}")))),
                ],
            )
        }
        Client::ClaudeCode => {
            let var = env_var(auth);
            // The same entry through Claude Code's own command; not with the token inline,
            // which would put it on stderr too. The name and URL come before `--header`: it
            // takes several values and would swallow them (Claude Code's own help orders it so).
            if let Auth::Env { .. } = auth {
                let header = format!("Authorization: Bearer ${{{var}}}");
                let scope = match scope {
                    Scope::User => "user",
                    Scope::Project => "project",
                };
                let more: String = narrow
                    .iter()
                    .map(|(name, value)| {
                        format!(" --header {}", shell_quote(&format!("{name}: {value}")))
                    })
                    .collect();
                command = Some(format!(
                    "claude mcp add --transport http --scope {scope} {ENTRY_NAME} {} --header {}{more}",
                    shell_quote(url),
                    shell_quote(&header)
                ));
            }
            json_entry(
                "mcpServers",
                vec![
                    ("type", "http".into()),
                    ("url", url.into()),
                    ("headers", headers(bearer(&format!("${{{var}}}")))),
                ],
            )
        }
        Client::Gemini | Client::Qwen => {
            let var = env_var(auth);
            json_entry(
                "mcpServers",
                vec![("httpUrl", url.into()), ("headers", headers(bearer(&format!("${{{var}}}"))))],
            )
        }
        Client::Copilot => {
            let var = env_var(auth);
            json_entry(
                "mcpServers",
                vec![
                    ("type", "http".into()),
                    ("url", url.into()),
                    ("headers", headers(bearer(&format!("${{{var}}}")))),
                    ("tools", CstInputValue::Array(vec!["*".into()])),
                ],
            )
        }
        Client::Opencode | Client::Kilo => {
            let var = env_var(auth);
            json_entry(
                "mcp",
                vec![
                    ("type", "remote".into()),
                    ("url", url.into()),
                    ("headers", headers(bearer(&format!("{{env:{var}}}")))),
                    ("oauth", false.into()),
                ],
            )
        }
        Client::Crush => {
            let var = env_var(auth);
            json_entry(
                "mcp",
                vec![
                    ("type", "http".into()),
                    ("url", url.into()),
                    ("headers", headers(bearer(&format!("${var}")))),
                ],
            )
        }
        Client::Cline => {
            let value = match auth {
                Auth::Inline(token) => format!("Bearer {}", token.expose()),
                Auth::Env { .. } => {
                    placeholder = true;
                    format!("Bearer {PLACEHOLDER}")
                }
            };
            json_entry(
                "mcpServers",
                vec![
                    ("type", "streamableHttp".into()),
                    ("url", url.into()),
                    ("headers", headers(value)),
                    ("disabled", false.into()),
                ],
            )
        }
        Client::Continue => {
            let var = env_var(auth);
            continue_block(url, Some(&bearer(&format!("${{{{ secrets.{var} }}}}"))), narrow)
        }
        Client::Codex => {
            let mut table = toml_edit::Table::new();
            table.insert("url", toml_edit::value(url));
            let mut headers = toml_edit::InlineTable::new();
            match auth {
                Auth::Env { var, .. } => {
                    table.insert("bearer_token_env_var", toml_edit::value(var.as_str()));
                    // `codex mcp add` takes no other header: with some, only the file has them.
                    if narrow.is_empty() {
                        command = Some(format!(
                            "codex mcp add {ENTRY_NAME} --url {} --bearer-token-env-var {var}",
                            shell_quote(url)
                        ));
                    }
                }
                Auth::Inline(token) => {
                    // Codex refuses an inline `bearer_token`; a literal header is what it takes.
                    headers.insert("Authorization", format!("Bearer {}", token.expose()).into());
                }
            }
            for (name, value) in narrow {
                headers.insert(*name, value.as_str().into());
            }
            if !headers.is_empty() {
                table.insert("http_headers", toml_edit::value(headers));
            }
            Entry::Toml { table }
        }
        Client::Vscode => {
            let (value, input) = match auth {
                Auth::Inline(token) => (format!("Bearer {}", token.expose()), None),
                Auth::Env { var, explicit: true } => (format!("Bearer ${{env:{var}}}"), None),
                Auth::Env { explicit: false, .. } => {
                    let input = CstInputValue::Object(vec![
                        ("type".into(), "promptString".into()),
                        ("id".into(), VSCODE_INPUT.into()),
                        ("description".into(), "Custory MCP token (cst_…)".into()),
                        ("password".into(), true.into()),
                    ]);
                    (format!("Bearer ${{input:{VSCODE_INPUT}}}"), Some(input))
                }
            };
            let mut entry = json_entry(
                "servers",
                vec![("type", "http".into()), ("url", url.into()), ("headers", headers(value))],
            );
            if let Entry::Json { input: slot, .. } = &mut entry {
                *slot = input;
            }
            entry
        }
        Client::ClaudeDesktop => {
            // Claude Desktop only runs local (stdio) servers from its config file, so the
            // mcp-remote bridge carries the requests. The header travels through an env
            // variable that mcp-remote expands in its own arguments; no space in the argument
            // (npx on Windows splits arguments at spaces).
            let mut args: Vec<CstInputValue> =
                vec!["-y".into(), "mcp-remote".into(), url.into(), "--header".into()];
            args.push("Authorization:${CUSTORY_AUTH}".into());
            for (name, value) in narrow {
                args.extend(["--header".into(), format!("{name}:{value}").into()]);
            }
            args.extend(["--transport".into(), "http-only".into()]);
            if needs_allow_http(url) {
                args.push("--allow-http".into());
            }
            let value = match auth {
                Auth::Inline(token) => format!("Bearer {}", token.expose()),
                Auth::Env { .. } => {
                    placeholder = true;
                    format!("Bearer {PLACEHOLDER}")
                }
            };
            json_entry(
                "mcpServers",
                vec![
                    ("command", "npx".into()),
                    ("args", CstInputValue::Array(args)),
                    ("env", CstInputValue::Object(vec![("CUSTORY_AUTH".into(), value.into())])),
                ],
            )
        }
        Client::Zed => {
            let value = match auth {
                Auth::Inline(token) => format!("Bearer {}", token.expose()),
                Auth::Env { .. } => {
                    placeholder = true;
                    format!("Bearer {PLACEHOLDER}")
                }
            };
            json_entry("context_servers", vec![("url", url.into()), ("headers", headers(value))])
        }
    };

    // How the token reaches the client.
    match (client, auth) {
        (_, Auth::Inline(_)) => {
            notes.push(Note::Warn(
                "this config contains the token itself: anyone who can read the file can use the \
                 key"
                .to_owned(),
            ));
            if scope == Scope::Project {
                notes.push(Note::Warn(
                    "do not commit this project file; without --inline-token it references \
                     the token instead of holding it"
                        .to_owned(),
                ));
            }
        }
        (Client::ClaudeDesktop, Auth::Env { .. }) => notes.push(Note::Warn(format!(
            "replace {PLACEHOLDER} with the key's token: Claude Desktop passes the bridge only the \
             \"env\" values written in its config, so the token has to be in the file"
        ))),
        (Client::Zed | Client::Cline, Auth::Env { .. }) => notes.push(Note::Warn(format!(
            "replace {PLACEHOLDER} with the key's token: {} does not expand environment \
             variables in headers",
            client.name()
        ))),
        (Client::Continue, Auth::Env { var, .. }) => notes.push(Note::Info(format!(
            "Continue reads secrets.{var} from a .env file, not from its environment: add the \
             line {var}=cst_… to ~/.continue/.env (or the workspace's .continue/.env); no key \
             yet? custory-mcp keys create --save"
        ))),
        (Client::Vscode, Auth::Env { explicit: false, .. }) => notes.push(Note::Info(
            "VS Code asks for the token the first time it starts the server and keeps it in its \
             secret storage."
                .to_owned(),
        )),
        (Client::Vscode, Auth::Env { var, explicit: true }) => {
            notes.push(Note::Warn(
                "some VS Code versions do not substitute ${env:…} in headers \
                 (microsoft/vscode#336232); if the server answers 401, drop --token-env and VS \
                 Code will ask for the token instead"
                    .to_owned(),
            ));
            notes.push(Note::Info(set_variable(client, var)));
        }
        (_, Auth::Env { var, .. }) => notes.push(Note::Info(set_variable(client, var))),
    }
    if client == Client::ClaudeDesktop {
        notes.push(Note::Info(
            "Claude Desktop reaches the server through the mcp-remote bridge (it needs Node.js \
             for npx); restart Claude Desktop after changing its config."
                .to_owned(),
        ));
    }

    Ok(Plan { client, entry, placeholder, command, notes })
}

/// The entry for a client that signs in with OAuth (`config --oauth`): the URL and no header,
/// so that the client answers the server's 401 with its browser sign-in.
pub fn plan_oauth(client: Client, url: &str, scope: Scope) -> Plan {
    let mut command = None;
    let entry = match client {
        Client::Cursor => json_entry("mcpServers", vec![("url", url.into())]),
        Client::Windsurf => json_entry("mcpServers", vec![("serverUrl", url.into())]),
        Client::Gemini | Client::Qwen => json_entry("mcpServers", vec![("httpUrl", url.into())]),
        Client::Copilot => json_entry(
            "mcpServers",
            vec![
                ("type", "http".into()),
                ("url", url.into()),
                ("tools", CstInputValue::Array(vec!["*".into()])),
            ],
        ),
        Client::Opencode | Client::Kilo => {
            json_entry("mcp", vec![("type", "remote".into()), ("url", url.into())])
        }
        Client::Crush => json_entry("mcp", vec![("type", "http".into()), ("url", url.into())]),
        Client::Cline => json_entry(
            "mcpServers",
            vec![
                ("type", "streamableHttp".into()),
                ("url", url.into()),
                ("disabled", false.into()),
            ],
        ),
        Client::Continue => continue_block(url, None, &[]),
        Client::ClaudeCode => {
            let scope = match scope {
                Scope::User => "user",
                Scope::Project => "project",
            };
            command = Some(format!(
                "claude mcp add --transport http --scope {scope} {ENTRY_NAME} {}",
                shell_quote(url)
            ));
            json_entry("mcpServers", vec![("type", "http".into()), ("url", url.into())])
        }
        Client::Codex => {
            let mut table = toml_edit::Table::new();
            table.insert("url", toml_edit::value(url));
            command = Some(format!(
                "codex mcp add {ENTRY_NAME} --url {} && codex mcp login {ENTRY_NAME}",
                shell_quote(url)
            ));
            Entry::Toml { table }
        }
        Client::Vscode => json_entry("servers", vec![("type", "http".into()), ("url", url.into())]),
        Client::ClaudeDesktop => {
            let mut args: Vec<CstInputValue> = vec!["-y".into(), "mcp-remote".into(), url.into()];
            args.extend(["--transport".into(), "http-only".into()]);
            if needs_allow_http(url) {
                args.push("--allow-http".into());
            }
            json_entry(
                "mcpServers",
                vec![("command", "npx".into()), ("args", CstInputValue::Array(args))],
            )
        }
        Client::Zed => json_entry("context_servers", vec![("url", url.into())]),
    };
    let notes = vec![
        Note::Info(format!(
            "No token in this config: {} There the server's owner approves it (the owner \
             credential, csa_…) and chooses its workspace, expiry and access. That creates an \
             ordinary key, shown by `custory-mcp keys list` as \"via OAuth\".",
            client.sign_in()
        )),
        Note::Info(
            "The server must run with `custory-mcp serve --oauth`; without it the client's \
             sign-in ends in \"registration rejected (404)\"."
                .to_owned(),
        ),
    ];
    Plan { client, entry, placeholder: false, command, notes }
}

/// Continue's block file: the one server, with its `Authorization` header when there is one.
/// Values are written as JSON strings, which YAML reads the same.
fn continue_block(url: &str, authorization: Option<&str>, narrow: &[(&str, String)]) -> Entry {
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let mut text = format!(
        "name: {ENTRY_NAME}\nversion: 0.0.1\nschema: v1\nmcpServers:\n  - name: {ENTRY_NAME}\n    \
         type: streamable-http\n    url: {}\n",
        quoted(url)
    );
    if let Some(value) = authorization {
        text.push_str(&format!(
            "    requestOptions:\n      headers:\n        Authorization: {}\n",
            quoted(value)
        ));
        for (name, value) in narrow {
            text.push_str(&format!("        {name}: {}\n", quoted(value)));
        }
    }
    Entry::Yaml { text }
}

/// The variable an env-referencing snippet names (the default when the token is inline, where
/// it is not used).
fn env_var(auth: &Auth) -> &str {
    match auth {
        Auth::Env { var, .. } => var,
        Auth::Inline(_) => DEFAULT_TOKEN_ENV,
    }
}

/// The line that says how to make the token visible to the client.
fn set_variable(client: Client, var: &str) -> String {
    let set =
        if cfg!(windows) { format!("setx {var} cst_…") } else { format!("export {var}=cst_…") };
    format!(
        "Set {var} in the environment {} starts from: {set} (no key yet? \
         custory-mcp keys create --save)",
        client.name()
    )
}

fn json_entry(servers_key: &'static str, fields: Vec<(&str, CstInputValue)>) -> Entry {
    let server = CstInputValue::Object(
        fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
    );
    Entry::Json { servers_key, server, input: None }
}

/// mcp-remote refuses plain HTTP except to localhost unless told otherwise.
fn needs_allow_http(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    parsed.scheme() == "http"
        && !matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]") | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_needs_allow_http_except_on_localhost() {
        assert!(!needs_allow_http("http://127.0.0.1:8787/api/mcp"));
        assert!(!needs_allow_http("http://localhost:8787/api/mcp"));
        assert!(!needs_allow_http("https://app.usecustory.com/api/mcp"));
        assert!(needs_allow_http("http://10.0.0.5:8787/api/mcp"));
    }
}
