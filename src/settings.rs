//! The CLI's saved settings, apart from secrets: `settings.json` in the config directory (see
//! [`crate::secrets::config_dir`]): the server commands go to when neither `--server` nor
//! `CUSTORY_SERVER` says (the one last logged in to), and per server URL the default workspace
//! that `custory-mcp workspaces use SLUG` stores.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What is saved for one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// The workspace commands act on when neither --workspace nor CUSTORY_WORKSPACE says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// The server last logged in to, when it is not the built-in default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_server: Option<String>,
    #[serde(default)]
    servers: BTreeMap<String, ServerSettings>,
}

fn path() -> anyhow::Result<PathBuf> {
    Ok(crate::secrets::config_dir()?.join("settings.json"))
}

fn read() -> anyhow::Result<File> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!("the settings file {} is not valid JSON; fix or delete it", path.display())
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
    }
}

/// What is saved for `server` (nothing when nothing is).
pub fn for_server(server: &str) -> anyhow::Result<ServerSettings> {
    Ok(read()?.servers.remove(server.trim_end_matches('/')).unwrap_or_default())
}

/// Saves `settings` for `server`; returns the file written.
pub fn save(server: &str, settings: ServerSettings) -> anyhow::Result<PathBuf> {
    let mut file = read()?;
    let server = server.trim_end_matches('/').to_owned();
    if settings == ServerSettings::default() {
        file.servers.remove(&server);
    } else {
        file.servers.insert(server, settings);
    }
    write(&file)
}

/// The server commands go to when neither `--server` nor `CUSTORY_SERVER` says: the one last
/// logged in to, if that was not the built-in default.
pub fn default_server() -> anyhow::Result<Option<String>> {
    Ok(read()?.default_server)
}

/// Makes `server` the one commands go to without `--server` (`None`: the built-in default
/// again). Returns whether that changed.
pub fn set_default_server(server: Option<&str>) -> anyhow::Result<bool> {
    let mut file = read()?;
    let server = server.map(|s| s.trim_end_matches('/').to_owned());
    if file.default_server == server {
        return Ok(false);
    }
    file.default_server = server;
    write(&file)?;
    Ok(true)
}

fn write(file: &File) -> anyhow::Result<PathBuf> {
    let path = path()?;
    let dir = path.parent().context("the settings file has no directory")?;
    crate::fsutil::create_private_dir(dir)
        .with_context(|| format!("could not create {}", dir.display()))?;
    crate::fsutil::write_private_atomic(&path, &serde_json::to_vec_pretty(file)?)
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(path)
}
