//! Secret tokens: MCP keys (`cst_…`) and owner credentials (`csa_…`).
//!
//! Shape (GitHub's token pattern): `prefix`, then 32 random base62 characters from the OS
//! CSPRNG, then 6 base62 characters of the CRC32 of everything before them. The checksum lets the server
//! (and secret scanners) reject a mistyped or truncated token without touching the database.
//!
//! [`PlainToken`] is the only type that holds a plaintext secret; it redacts itself in `Debug`
//! and `Display`. Only its [`TokenHash`] (SHA-256) and display prefix are ever stored.

use std::fmt;

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Length of the stored, displayable prefix (e.g. `cst_7fQ2kd9X`).
pub const DISPLAY_PREFIX_LEN: usize = 12;

/// What a token grants. The two never cross: the MCP endpoint refuses owner credentials and the
/// admin API refuses MCP keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A workspace-scoped MCP key.
    Mcp,
    /// The owner credential of a server (admin API, all workspaces).
    Owner,
}

impl TokenKind {
    // The prefixes are part of the token format that secret scanners match on: never change them.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Mcp => "cst_",
            TokenKind::Owner => "csa_",
        }
    }

    pub const fn token_len(self) -> usize {
        self.prefix().len() + RANDOM_LEN + CHECKSUM_LEN
    }
}

/// Why a presented string is not a well-formed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("the token does not start with cst_ (MCP key) or csa_ (owner credential)")]
    UnknownPrefix,
    #[error("the token has the wrong length (was it truncated when copied?)")]
    WrongLength,
    #[error("the token contains characters that are not letters or digits")]
    BadCharacters,
    #[error("the token's checksum does not match (was it mistyped?)")]
    BadChecksum,
}

/// A plaintext token. Exists only between generation and the one response that shows it, or
/// between reading a token from a user or client and hashing it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken {
    kind: TokenKind,
    secret: String,
}

impl PlainToken {
    /// A new random token of `kind` from the OS CSPRNG.
    pub fn generate(kind: TokenKind) -> Self {
        let mut secret = String::with_capacity(kind.token_len());
        secret.push_str(kind.prefix());
        secret.push_str(&random_base62(RANDOM_LEN));
        let checksum = crc32fast::hash(secret.as_bytes());
        secret.push_str(&base62_fixed(checksum, CHECKSUM_LEN));
        Self { kind, secret }
    }

    /// Checks the format and checksum of `input` (surrounding whitespace is ignored).
    pub fn parse(input: &str) -> Result<Self, TokenFormatError> {
        let input = input.trim();
        let kind = if input.starts_with(TokenKind::Mcp.prefix()) {
            TokenKind::Mcp
        } else if input.starts_with(TokenKind::Owner.prefix()) {
            TokenKind::Owner
        } else {
            return Err(TokenFormatError::UnknownPrefix);
        };
        if input.len() != kind.token_len() {
            return Err(TokenFormatError::WrongLength);
        }
        let body = &input[kind.prefix().len()..];
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::BadCharacters);
        }
        let (rest, checksum) = input.split_at(kind.token_len() - CHECKSUM_LEN);
        if base62_fixed(crc32fast::hash(rest.as_bytes()), CHECKSUM_LEN) != checksum {
            return Err(TokenFormatError::BadChecksum);
        }
        Ok(Self { kind, secret: input.to_owned() })
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The plaintext. Call only to show the token to its owner once, or to send it to a server.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// The first 12 characters, safe to store and display.
    pub fn display_prefix(&self) -> String {
        self.secret[..DISPLAY_PREFIX_LEN].to_owned()
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.secret.as_bytes()).into())
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainToken({}…[redacted])", self.kind.prefix())
    }
}

impl fmt::Display for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…[redacted]", self.kind.prefix())
    }
}

/// SHA-256 of a full token: what the database stores and looks tokens up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash")
    }
}

/// `len` characters drawn uniformly from base62 with the OS CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        // Rejection sampling: 248 = 4 * 62, so bytes below it map to base62 without bias.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(b % 62)] as char);
        }
    }
    out
}

fn fill_random(buf: &mut [u8]) {
    // The OS CSPRNG failing means the machine cannot produce secrets at all; there is no safe
    // fallback, so this is one of the few places where aborting is the right answer.
    #[expect(clippy::expect_used, reason = "no secret can be made without the OS CSPRNG")]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `value` in base62, left-padded with `0` to exactly `width` characters.
fn base62_fixed(mut value: u32, width: usize) -> String {
    let mut digits = vec![ALPHABET[0]; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    // ALPHABET is ASCII, so the bytes are valid UTF-8.
    digits.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_have_the_documented_shape() {
        for kind in [TokenKind::Mcp, TokenKind::Owner] {
            let token = PlainToken::generate(kind);
            assert_eq!(token.expose().len(), 42);
            assert!(token.expose().starts_with(kind.prefix()));
            assert_eq!(PlainToken::parse(token.expose()), Ok(token.clone()));
            assert_eq!(token.display_prefix().len(), DISPLAY_PREFIX_LEN);
        }
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let token = PlainToken::generate(TokenKind::Mcp);
        let mut chars: Vec<char> = token.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(PlainToken::parse(&typo), Err(TokenFormatError::BadChecksum));
    }

    #[test]
    fn malformed_tokens_are_told_apart() {
        let token = PlainToken::generate(TokenKind::Mcp);
        assert_eq!(PlainToken::parse("ghp_abc"), Err(TokenFormatError::UnknownPrefix));
        assert_eq!(PlainToken::parse(&token.expose()[..30]), Err(TokenFormatError::WrongLength));
        let bad = format!("cst_{}", "-".repeat(38));
        assert_eq!(PlainToken::parse(&bad), Err(TokenFormatError::BadCharacters));
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let token = PlainToken::generate(TokenKind::Owner);
        let random_part = &token.expose()[4..];
        assert!(!format!("{token:?}").contains(random_part));
        assert!(!format!("{token}").contains(random_part));
        assert!(!format!("{:?}", token.hash()).contains(random_part));
    }

    #[test]
    fn base62_is_fixed_width() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 6), "00000z");
        assert_eq!(base62_fixed(u32::MAX, 6), "4gfFC3");
    }
}
