//! Files that hold secrets: directories 0700, files 0600, replaced atomically.

use std::io::Write as _;
use std::path::Path;

/// Creates `dir` (and its parents) as 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates a new, empty file readable only by its owner (fails if it exists).
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes an existing file 0600.
pub fn restrict_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Replaces `path` with `bytes` atomically: a 0600 temp file beside it, synced, then renamed.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_private(path, |file| file.write_all(bytes))
}

/// Replaces `path` atomically with what `write` puts in a 0600 temp file beside it (synced,
/// then renamed into place); on an error the temp file is removed and `path` is untouched.
pub fn replace_private<T, E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<T, E>,
) -> Result<T, E> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", crate::token::random_base62(8)));
    let result = (|| {
        let mut file = create_private_file(&temp)?;
        let value = write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
