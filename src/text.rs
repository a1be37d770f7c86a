//! How quantities and commands read for people, wherever a sentence is made: the CLI's tables
//! and hints, and the server's one-line descriptions of calls in the audit trail and the
//! commands its errors suggest. (Not the wire contract: that is `api.rs`.)

/// A size in bytes as people read it: `512 B`, `2.1 kB`, `3.4 MB`.
pub fn size_text(bytes: i64) -> String {
    match bytes {
        b if b < 1000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// `text` as one POSIX shell word: bare when it is safe, else in single quotes (so that
/// `${VAR}` reaches the program unexpanded).
pub fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if safe { text.to_owned() } else { format!("'{}'", text.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_in_units() {
        assert_eq!(super::size_text(512), "512 B");
        assert_eq!(super::size_text(2_149), "2.1 kB");
        assert_eq!(super::size_text(3_400_000), "3.4 MB");
    }
}
