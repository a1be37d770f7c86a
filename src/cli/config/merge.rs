//! Merging the `custory` entry into a client's existing config file without disturbing anything
//! else in it.
//!
//! JSON files are edited through a concrete syntax tree (`jsonc-parser`'s CST), not parsed into
//! values and printed again: key order, indentation, and — in the files whose clients accept
//! them — comments and trailing commas stay exactly as they were; only the one entry changes.
//! TOML (Codex) goes through `toml_edit` for the same reason.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstNode, CstRootNode};

use crate::error::CliError;

/// The name of the entry in each client's file (`mcpServers.custory`, `[mcp_servers.custory]`).
pub const ENTRY_NAME: &str = "custory";

/// The entry to merge.
#[derive(Debug, Clone)]
pub enum Entry {
    Json {
        /// The object that holds the servers (`mcpServers`, `servers`, `context_servers`).
        servers_key: &'static str,
        /// The `custory` server.
        server: CstInputValue,
        /// VS Code's `inputs` entry for the token prompt.
        input: Option<CstInputValue>,
    },
    Toml {
        /// The `[mcp_servers.custory]` table.
        table: toml_edit::Table,
    },
    /// A whole YAML file that holds only this entry (Continue's block file, `custory.yaml`):
    /// written as it is, replacing the file's previous version.
    Yaml { text: String },
}

impl Entry {
    pub fn format(&self) -> &'static str {
        match self {
            Entry::Json { .. } => "json",
            Entry::Toml { .. } => "toml",
            Entry::Yaml { .. } => "yaml",
        }
    }
}

/// The file's syntax: which JSON extensions its client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Plain JSON: the client would not read a file with comments either.
    Json,
    /// JSON with comments and trailing commas (VS Code, Zed, Gemini CLI settings).
    Jsonc,
    Toml,
    /// A file of our own, written whole.
    Yaml,
}

/// `existing` (the file's text; `None` when there is no file yet) with the entry merged in.
/// An existing `custory` entry is replaced; everything else is kept as it was.
pub fn merge(
    entry: &Entry,
    syntax: Syntax,
    existing: Option<&str>,
    path: &Path,
) -> anyhow::Result<String> {
    let text = existing.unwrap_or("");
    match entry {
        Entry::Json { servers_key, server, input } => {
            merge_json(text, syntax, servers_key, server, input.as_ref(), path)
        }
        Entry::Toml { table } => merge_toml(text, table, path),
        Entry::Yaml { text } => Ok(text.clone()),
    }
}

fn merge_json(
    text: &str,
    syntax: Syntax,
    servers_key: &str,
    server: &CstInputValue,
    input: Option<&CstInputValue>,
    path: &Path,
) -> anyhow::Result<String> {
    // A file with only whitespace is as good as none.
    let text = if text.trim().is_empty() { "" } else { text };
    let jsonc = syntax == Syntax::Jsonc;
    if !jsonc && !text.is_empty() {
        // The clients of these files read plain JSON; serde_json is the strict judge.
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            let relaxed = CstRootNode::parse(text, &parse_options(true)).is_ok();
            let what = if relaxed {
                format!("is not plain JSON (it has comments or trailing commas): {error}")
            } else {
                format!("is not valid JSON: {error}")
            };
            return Err(malformed(path, &what));
        }
    }
    let root = CstRootNode::parse(text, &parse_options(jsonc))
        .map_err(|error| malformed(path, &format!("is not valid JSON: {error}")))?;
    let top = root
        .object_value_or_create()
        .ok_or_else(|| malformed(path, "does not hold a JSON object at the top level"))?;
    let servers = top.object_value_or_create(servers_key).ok_or_else(|| {
        malformed(path, &format!("has a \"{servers_key}\" that is not a JSON object"))
    })?;
    match servers.get(ENTRY_NAME) {
        // Rewriting an equal entry could still change its layout: leave it as it is.
        Some(existing) if existing.value().is_some_and(|node| equal(&node, server)) => {}
        Some(existing) => existing.set_value(server.clone()),
        None => {
            servers.append(ENTRY_NAME, server.clone());
        }
    }
    // A long argument list (Claude Desktop's bridge) reads better one per line.
    if let Some(entry) = servers.object_value(ENTRY_NAME) {
        for prop in entry.properties() {
            if let Some(array) = prop.array_value()
                && array.elements().len() > 3
            {
                array.ensure_multiline();
            }
        }
    }
    if let Some(input) = input {
        let inputs = top
            .array_value_or_create("inputs")
            .ok_or_else(|| malformed(path, "has an \"inputs\" that is not a JSON array"))?;
        let id = input_id(input);
        let same_id = inputs.elements().into_iter().find_map(|element| {
            element.as_object().filter(|object| {
                object
                    .get("id")
                    .and_then(|prop| prop.value())
                    .and_then(|value| value.as_string_lit())
                    .and_then(|lit| lit.decoded_value().ok())
                    == id
            })
        });
        match same_id {
            Some(object) if equal(&CstNode::from(object.clone()), input) => {}
            Some(object) => {
                object.replace_with(input.clone());
            }
            None => {
                inputs.append(input.clone());
            }
        }
    }
    let mut merged = root.to_string();
    if !merged.ends_with('\n') {
        merged.push('\n');
    }
    Ok(merged)
}

/// JSON, plus comments and trailing commas when `jsonc` (what VS Code, Zed and Gemini CLI accept
/// in their settings); none of JSON5's other extensions.
fn parse_options(jsonc: bool) -> ParseOptions {
    ParseOptions {
        allow_comments: jsonc,
        allow_trailing_commas: jsonc,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Whether `node` holds exactly `value` (layout aside).
fn equal(node: &CstNode, value: &CstInputValue) -> bool {
    match value {
        CstInputValue::Null => node.as_null_keyword().is_some(),
        CstInputValue::Bool(want) => node.as_boolean_lit().is_some_and(|lit| lit.value() == *want),
        CstInputValue::Number(want) => {
            node.as_number_lit().is_some_and(|lit| lit.to_string() == *want)
        }
        CstInputValue::String(want) => node
            .as_string_lit()
            .and_then(|lit| lit.decoded_value().ok())
            .is_some_and(|text| text == *want),
        CstInputValue::Array(items) => node.as_array().is_some_and(|array| {
            let elements = array.elements();
            elements.len() == items.len()
                && elements.iter().zip(items).all(|(element, item)| equal(element, item))
        }),
        CstInputValue::Object(fields) => node.as_object().is_some_and(|object| {
            object.properties().len() == fields.len()
                && fields.iter().all(|(name, field)| {
                    object
                        .get(name)
                        .and_then(|prop| prop.value())
                        .is_some_and(|found| equal(&found, field))
                })
        }),
    }
}

fn input_id(input: &CstInputValue) -> Option<String> {
    let CstInputValue::Object(fields) = input else { return None };
    fields.iter().find_map(|(name, value)| match value {
        CstInputValue::String(id) if name == "id" => Some(id.clone()),
        _ => None,
    })
}

fn merge_toml(text: &str, table: &toml_edit::Table, path: &Path) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|error: toml_edit::TomlError| {
        // The error renders as several lines pointing at the spot; the first says what.
        let message = error.message().trim_end().to_owned();
        let at = error
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                format!(" on line {line}")
            })
            .unwrap_or_default();
        malformed(path, &format!("is not valid TOML: {message}{at}"))
    })?;
    let servers = doc.entry("mcp_servers").or_insert_with(|| {
        let mut servers = toml_edit::Table::new();
        servers.set_implicit(true);
        toml_edit::Item::Table(servers)
    });
    match servers {
        toml_edit::Item::Table(servers) => {
            let mut table = table.clone();
            // Keep the comments above an existing [mcp_servers.custory] and its place.
            if let Some(old) = servers.get(ENTRY_NAME).and_then(toml_edit::Item::as_table) {
                *table.decor_mut() = old.decor().clone();
                if let Some(position) = old.position() {
                    table.set_position(Some(position));
                }
            }
            servers.insert(ENTRY_NAME, toml_edit::Item::Table(table));
        }
        toml_edit::Item::Value(toml_edit::Value::InlineTable(servers)) => {
            servers.insert(
                ENTRY_NAME,
                toml_edit::Value::InlineTable(table.clone().into_inline_table()),
            );
        }
        _ => return Err(malformed(path, "has an mcp_servers that is not a table")),
    }
    let mut merged = doc.to_string();
    if !merged.ends_with('\n') {
        merged.push('\n');
    }
    Ok(merged)
}

fn malformed(path: &Path, what: &str) -> anyhow::Error {
    CliError::failure(format!("{} {what}", path.display()))
        .hint("fix the file (or move it aside) and run again; it was left untouched")
        .into()
}

/// The file's current text; `None` when it does not exist yet. Opened without blocking, so a
/// FIFO put in a config file's place cannot hang the read; anything but a regular file is
/// refused.
pub fn read(path: &Path) -> anyhow::Result<Option<String>> {
    let opened = {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(
            &mut options,
            rustix::fs::OFlags::NONBLOCK.bits() as i32,
        );
        options.open(path).and_then(|mut file| {
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(Err(kind_of(&meta)));
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok(Ok(bytes))
        })
    };
    let opened = match opened {
        Ok(Err(kind)) => return Err(not_regular(path, kind)),
        Ok(Ok(bytes)) => Ok(bytes),
        Err(error) => Err(error),
    };
    match opened {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            CliError::failure(format!("{} is not UTF-8 text", path.display()))
                .hint("fix the file (or move it aside) and run again; it was left untouched")
                .into()
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
    }
}

/// What a file that is not a regular one is, for people.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a regular file" }
}

fn not_regular(path: &Path, kind: &str) -> anyhow::Error {
    CliError::failure(format!(
        "{} is {kind}, not a regular file: a config is written only into a regular file",
        path.display()
    ))
    .hint("move it aside (or write the entry by hand), then run this again; it was left untouched")
    .into()
}

/// Where `config --write` may write for `path`, checked before anything is read: the path
/// itself when it is a regular file or does not exist; the file a symbolic link points at only
/// when `follow` says to (`--follow-symlink`), and never a link that points nowhere. Returns
/// the file to write and, for an existing file, its permission bits.
pub fn check_target(path: &Path, follow: bool) -> anyhow::Result<(PathBuf, Option<u32>)> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((path.to_owned(), None));
        }
        Err(error) => {
            return Err(error).with_context(|| format!("could not read {}", path.display()));
        }
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        let points = std::fs::read_link(path).map(|p| p.display().to_string()).unwrap_or_default();
        let Ok(target) = std::fs::canonicalize(path) else {
            return Err(CliError::failure(format!(
                "{} is a symbolic link to {points}, which does not exist",
                path.display()
            ))
            .hint("remove the link or create the file it points at, then run this again")
            .into());
        };
        if !follow {
            return Err(CliError::failure(format!(
                "{} is a symbolic link (to {})",
                path.display(),
                target.display()
            ))
            .hint("pass --follow-symlink to write the file it points at, or remove the link")
            .into());
        }
        let meta = std::fs::metadata(&target)
            .with_context(|| format!("could not read {}", target.display()))?;
        (target, meta)
    } else {
        (path.to_owned(), meta)
    };
    if !meta.is_file() {
        return Err(not_regular(&target, kind_of(&meta)));
    }
    #[cfg(unix)]
    let mode = Some(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
    #[cfg(not(unix))]
    let mode = None;
    if meta.permissions().readonly() {
        return Err(CliError::failure(format!(
            "{} is read-only{}: it was left untouched",
            target.display(),
            mode.map(|m| format!(" (mode {m:04o})")).unwrap_or_default()
        ))
        .hint(format!(
            "make it writable (chmod u+w {}) if this tool may change it, then run this again",
            crate::cli::shared::shell_quote(&target.display().to_string())
        ))
        .into());
    }
    Ok((target, mode))
}

/// Follows a symlinked config file (dotfile managers link them) so that the write replaces
/// the file it points at, not the link.
pub fn resolve(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    }
}

/// `path`, or the directory holding it, when that is a symbolic link.
pub fn linked(path: &Path) -> Option<PathBuf> {
    let is_link =
        |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|meta| meta.file_type().is_symlink());
    let parent = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    [Some(path), parent].into_iter().flatten().find(|p| is_link(p)).map(Path::to_owned)
}

/// `<file>.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".bak");
    path.with_file_name(name)
}

/// Writes `merged` to `path` (atomically, parent directories 0700 when they are new), after
/// keeping `previous` in `<file>.bak` (0600). A new file is 0600; an existing one keeps `mode`.
/// Returns the backup's path.
pub fn write(
    path: &Path,
    previous: Option<&str>,
    merged: &str,
    mode: Option<u32>,
) -> anyhow::Result<Option<PathBuf>> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::fsutil::create_private_dir(dir)
        .with_context(|| format!("could not create {}", dir.display()))?;
    let backup = match previous {
        Some(previous) => {
            let backup = backup_path(path);
            crate::fsutil::write_private_atomic(&backup, previous.as_bytes())
                .with_context(|| format!("could not write the backup {}", backup.display()))?;
            Some(backup)
        }
        None => None,
    };
    crate::fsutil::write_private_atomic(path, merged.as_bytes())
        .with_context(|| format!("could not write {}", path.display()))?;
    #[cfg(unix)]
    if let Some(mode) = mode.filter(|&mode| mode != 0o600) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("could not keep the mode of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(backup)
}

/// A unified diff of the change, one line per element.
pub fn diff(path: &Path, previous: Option<&str>, merged: &str) -> Vec<String> {
    let old_name =
        if previous.is_some() { path.display().to_string() } else { "/dev/null".to_owned() };
    let new_name = path.display().to_string();
    let diff = similar::TextDiff::from_lines(previous.unwrap_or(""), merged);
    diff.unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> CstInputValue {
        CstInputValue::Object(vec![("url".into(), "https://h/api/mcp".into())])
    }

    fn json(text: Option<&str>, syntax: Syntax) -> anyhow::Result<String> {
        let entry = Entry::Json { servers_key: "mcpServers", server: server(), input: None };
        merge(&entry, syntax, text, Path::new("mcp.json"))
    }

    #[test]
    fn a_new_json_file_holds_just_the_entry() {
        let merged = json(None, Syntax::Json).expect("merge");
        assert_eq!(
            merged,
            "{\n  \"mcpServers\": {\n    \"custory\": {\n      \"url\": \"https://h/api/mcp\"\n    }\n  }\n}\n"
        );
        assert_eq!(json(Some("  \n"), Syntax::Json).expect("merge"), merged);
    }

    #[test]
    fn other_keys_keep_their_order_and_format() {
        let text = "{\n    \"zeta\": 1,\n    \"mcpServers\": {\n        \"other\": {\"url\": \"x\"}\n    },\n    \"alpha\": [1, 2]\n}\n";
        let merged = json(Some(text), Syntax::Json).expect("merge");
        assert_eq!(
            merged,
            "{\n    \"zeta\": 1,\n    \"mcpServers\": {\n        \"other\": {\"url\": \"x\"},\n        \"custory\": {\n            \"url\": \"https://h/api/mcp\"\n        }\n    },\n    \"alpha\": [1, 2]\n}\n"
        );
    }

    #[test]
    fn an_existing_entry_is_replaced_and_merging_twice_changes_nothing() {
        let once =
            json(Some("{\"mcpServers\": {\"custory\": {\"url\": \"old\"}}}\n"), Syntax::Json)
                .expect("merge");
        assert!(!once.contains("old"), "{once}");
        assert_eq!(json(Some(&once), Syntax::Json).expect("merge"), once);
    }

    #[test]
    fn comments_survive_where_the_client_allows_them_and_are_refused_elsewhere() {
        let text = "{\n  // my settings\n  \"theme\": \"dark\", // trailing\n}\n";
        let merged = json(Some(text), Syntax::Jsonc).expect("merge");
        assert!(merged.contains("// my settings") && merged.contains("// trailing"), "{merged}");
        let error = json(Some(text), Syntax::Json).expect_err("strict JSON");
        assert!(
            error.to_string().contains("is not plain JSON (it has comments or trailing commas)"),
            "{error}"
        );
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for (text, want) in [
            ("[1]", "not hold a JSON object"),
            ("{\"mcpServers\": []}", "\"mcpServers\" that is not a JSON object"),
            ("{\"a\": 1,}", "is not plain JSON"),
            ("{\"a\": ", "is not valid JSON"),
        ] {
            let error = json(Some(text), Syntax::Json).expect_err(text);
            assert!(error.to_string().contains(want), "{text}: {error}");
        }
    }

    #[test]
    fn the_vscode_input_is_added_once() {
        let input = CstInputValue::Object(vec![
            ("type".into(), "promptString".into()),
            ("id".into(), "custory-token".into()),
        ]);
        let entry = Entry::Json { servers_key: "servers", server: server(), input: Some(input) };
        let path = Path::new("mcp.json");
        let text = "{\"inputs\": [{\"type\": \"promptString\", \"id\": \"other\"}]}";
        let once = merge(&entry, Syntax::Jsonc, Some(text), path).expect("merge");
        let twice = merge(&entry, Syntax::Jsonc, Some(&once), path).expect("merge");
        assert_eq!(once, twice);
        assert_eq!(once.matches("custory-token").count(), 1, "{once}");
        assert!(once.contains("\"other\""), "{once}");
    }

    #[test]
    fn toml_keeps_comments_and_other_servers() {
        let mut table = toml_edit::Table::new();
        table.insert("url", toml_edit::value("https://h/api/mcp"));
        let entry = Entry::Toml { table };
        let text = "# mine\nmodel = \"o3\"\n\n[mcp_servers.other]\nurl = \"x\" # keep\n\n[profiles.a]\nmodel = \"b\"\n";
        let merged =
            merge(&entry, Syntax::Toml, Some(text), Path::new("config.toml")).expect("merge");
        assert_eq!(
            merged,
            "# mine\nmodel = \"o3\"\n\n[mcp_servers.other]\nurl = \"x\" # keep\n\n[mcp_servers.custory]\nurl = \"https://h/api/mcp\"\n\n[profiles.a]\nmodel = \"b\"\n"
        );
        let again =
            merge(&entry, Syntax::Toml, Some(&merged), Path::new("config.toml")).expect("merge");
        assert_eq!(again, merged);
        let error = merge(&entry, Syntax::Toml, Some("model = \n"), Path::new("config.toml"))
            .expect_err("bad toml");
        assert!(error.to_string().contains("is not valid TOML"), "{error}");
    }

    #[test]
    fn backups_sit_next_to_the_file() {
        assert_eq!(backup_path(Path::new("/h/.claude.json")), PathBuf::from("/h/.claude.json.bak"));
    }
}
