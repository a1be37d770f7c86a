//! The local credential store: the OS keyring where one works, else a 0600 JSON file in the
//! config directory. `CUSTORY_CREDENTIAL_STORE=file` selects the file (tests, headless boxes);
//! `CUSTORY_CONFIG_DIR` moves the config directory.
//!
//! Entries are named by account: `owner@<server URL>` for the owner credential and
//! `<key id>@<server URL>` for an MCP key saved with `keys create --save`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::token::PlainToken;

const SERVICE: &str = "custory-mcp";

/// Where an entry was written, for the one-line notice the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Keyring,
    File(PathBuf),
}

impl std::fmt::Display for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Saved::Keyring => f.write_str("the OS keyring"),
            Saved::File(path) => {
                write!(f, "{} (readable only by you; no OS keyring here)", path.display())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct CredentialStore {
    use_keyring: bool,
    file: PathBuf,
}

pub fn owner_account(server: &str) -> String {
    format!("owner@{}", server.trim_end_matches('/'))
}

pub fn key_account(server: &str, key_id: &str) -> String {
    format!("{key_id}@{}", server.trim_end_matches('/'))
}

/// The directory for configuration and the credentials file.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CUSTORY_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("com", "usecustory", "custory-mcp")
        .map(|dirs| dirs.config_dir().to_owned())
        .context("could not find a home directory for the configuration; set CUSTORY_CONFIG_DIR")
}

impl CredentialStore {
    pub fn open() -> anyhow::Result<Self> {
        let use_keyring = match std::env::var("CUSTORY_CREDENTIAL_STORE").as_deref() {
            Ok("file") => false,
            Ok("keyring") | Err(_) => true,
            Ok(other) => anyhow::bail!(
                "CUSTORY_CREDENTIAL_STORE={other:?} is not understood; use `keyring` or `file`"
            ),
        };
        Ok(Self { use_keyring, file: config_dir()?.join("credentials.json") })
    }

    pub fn get(&self, account: &str) -> anyhow::Result<Option<PlainToken>> {
        Ok(self.find(account)?.map(|(token, _)| token))
    }

    /// The token saved for `account`, and where it is.
    pub fn find(&self, account: &str) -> anyhow::Result<Option<(PlainToken, Saved)>> {
        if self.use_keyring
            && let Ok(entry) = keyring::Entry::new(SERVICE, account)
            && let Ok(secret) = entry.get_password()
        {
            return Ok(PlainToken::parse(&secret).ok().map(|token| (token, Saved::Keyring)));
        }
        let entries = read_file(&self.file)?;
        Ok(entries
            .get(account)
            .and_then(|secret| PlainToken::parse(secret).ok())
            .map(|token| (token, Saved::File(self.file.clone()))))
    }

    /// Saves `token`; in the keyring when it works, else in the 0600 file.
    pub fn set(&self, account: &str, token: &PlainToken) -> anyhow::Result<Saved> {
        if self.use_keyring {
            let stored = keyring::Entry::new(SERVICE, account)
                .and_then(|entry| entry.set_password(token.expose()));
            if stored.is_ok() {
                // A stale copy in the file must not shadow the new one later.
                self.remove_from_file(account)?;
                return Ok(Saved::Keyring);
            }
        }
        let mut entries = read_file(&self.file)?;
        entries.insert(account.to_owned(), token.expose().to_owned());
        write_file(&self.file, &entries)?;
        Ok(Saved::File(self.file.clone()))
    }

    /// Forgets `account` everywhere. Returns whether anything was there.
    pub fn delete(&self, account: &str) -> anyhow::Result<bool> {
        let mut found = false;
        if self.use_keyring
            && let Ok(entry) = keyring::Entry::new(SERVICE, account)
        {
            found |= entry.delete_credential().is_ok();
        }
        found |= self.remove_from_file(account)?;
        Ok(found)
    }

    fn remove_from_file(&self, account: &str) -> anyhow::Result<bool> {
        let mut entries = read_file(&self.file)?;
        if entries.remove(account).is_none() {
            return Ok(false);
        }
        write_file(&self.file, &entries)?;
        Ok(true)
    }
}

fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!("the credentials file {} is not valid JSON; fix or delete it", path.display())
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
    }
}

/// Writes the file atomically (temp file + rename), readable only by its owner.
fn write_file(path: &Path, entries: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let dir = path.parent().context("the credentials file has no directory")?;
    crate::fsutil::create_private_dir(dir)
        .with_context(|| format!("could not create {}", dir.display()))?;
    let bytes = serde_json::to_vec_pretty(entries)?;
    crate::fsutil::write_private_atomic(path, &bytes)
        .with_context(|| format!("could not write {}", path.display()))
}
