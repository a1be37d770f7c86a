//! Secret tokens: MCP keys (`cst_…`), the owner credential (`csa_…`), members' personal
//! credentials (`csm_…`) and the invitation codes that issue them (`csi_…`).
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
    /// A member's personal credential (admin API, within the member's roles).
    Member,
    /// A one-time invitation code, redeemed for a member credential.
    Invitation,
}

impl TokenKind {
    // The prefixes are part of the token format that secret scanners match on: never change them.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Mcp => "cst_",
            TokenKind::Owner => "csa_",
            TokenKind::Member => "csm_",
            TokenKind::Invitation => "csi_",
        }
    }

    /// Every kind, for parsing by prefix.
    pub const ALL: [Self; 4] = [Self::Mcp, Self::Owner, Self::Member, Self::Invitation];

    /// Whether the admin API accepts this kind as its bearer credential.
    pub const fn is_admin_credential(self) -> bool {
        matches!(self, Self::Owner | Self::Member)
    }

    pub const fn token_len(self) -> usize {
        self.prefix().len() + RANDOM_LEN + CHECKSUM_LEN
    }
}

/// Why a presented string is not a well-formed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error(
        "the token does not start with cst_ (MCP key), csa_ (owner credential), csm_ (member \
         credential) or csi_ (invitation code)"
    )]
    UnknownPrefix,
    #[error(
        "that is the token with \"Bearer \" before it: give the token alone (cst_… or csa_…); \
         the Authorization header adds Bearer itself"
    )]
    BearerPrefix,
    #[error("the token is in quotes: give it without them (they were copied along with it)")]
    Quoted,
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
        secret.extend(checksum_of(&secret).map(char::from));
        Self { kind, secret }
    }

    /// Checks the format and checksum of `input` (surrounding whitespace is ignored).
    pub fn parse(input: &str) -> Result<Self, TokenFormatError> {
        let input = input.trim();
        // The two ways a token is most often pasted wrong, explained (not silently accepted:
        // a client given the same text would fail).
        let bare =
            |text: &str| TokenKind::ALL.into_iter().any(|kind| text.starts_with(kind.prefix()));
        if let Some(rest) = input.strip_prefix("Bearer ").or_else(|| input.strip_prefix("bearer "))
            && bare(rest.trim().trim_matches(['"', '\'']))
        {
            return Err(TokenFormatError::BearerPrefix);
        }
        if input.len() > 1
            && (input.starts_with(['"', '\'']) || input.ends_with(['"', '\'']))
            && bare(input.trim_matches(['"', '\'']))
        {
            return Err(TokenFormatError::Quoted);
        }
        let kind = TokenKind::ALL
            .into_iter()
            .find(|kind| input.starts_with(kind.prefix()))
            .ok_or(TokenFormatError::UnknownPrefix)?;
        if input.len() != kind.token_len() {
            return Err(TokenFormatError::WrongLength);
        }
        let body = &input[kind.prefix().len()..];
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::BadCharacters);
        }
        let (rest, checksum) = input.split_at(kind.token_len() - CHECKSUM_LEN);
        if checksum_of(rest) != checksum.as_bytes() {
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

pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS CSPRNG failing means the machine cannot produce secrets at all; there is no safe
    // fallback, so this is one of the few places where aborting is the right answer.
    #[expect(clippy::expect_used, reason = "no secret can be made without the OS CSPRNG")]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// The checksum that ends a token: the CRC-32 of the text before it, in base62.
fn checksum_of(text: &str) -> [u8; CHECKSUM_LEN] {
    base62_fixed(crc32fast::hash(text.as_bytes()))
}

/// `value` in base62 (ASCII), left-padded with `0` to exactly [`CHECKSUM_LEN`] characters.
fn base62_fixed(mut value: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [ALPHABET[0]; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_have_the_documented_shape() {
        for kind in TokenKind::ALL {
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
        assert_eq!(&base62_fixed(0), b"000000");
        assert_eq!(&base62_fixed(61), b"00000z");
        assert_eq!(&base62_fixed(u32::MAX), b"4gfFC3");
    }
}

#[cfg(test)]
mod proptests {
    //! Property tests of the token format. Validity is checked against a reference written from
    //! the documented format (DESIGN.md §3), not from the code above.

    use proptest::prelude::*;

    use super::*;

    const CASES: u32 = 2_000;
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// The format from the spec: `cst_`/`csa_`/`csm_`/`csi_`, 32 base62 characters, then the CRC32 of those
    /// 36 characters as 6 base62 digits (big-endian, zero-padded); surrounding whitespace is
    /// ignored.
    fn reference_is_valid(input: &str) -> bool {
        let token = input.trim();
        let known = ["cst_", "csa_", "csm_", "csi_"].iter().any(|p| token.starts_with(p));
        if !known || token.len() != 42 {
            return false;
        }
        if !token.bytes().skip(4).all(|b| DIGITS.contains(&b)) {
            return false;
        }
        let (rest, checksum) = token.split_at(36);
        let mut crc = u64::from(crc32fast::hash(rest.as_bytes()));
        let mut expected = [b'0'; 6];
        for digit in expected.iter_mut().rev() {
            *digit = DIGITS[usize::try_from(crc % 62).unwrap_or(0)];
            crc /= 62;
        }
        checksum.as_bytes() == expected
    }

    /// A valid token of `kind` whose random part is `body` (32 base62 characters).
    fn token_from(kind: TokenKind, body: &str) -> String {
        let rest = format!("{}{body}", kind.prefix());
        let checksum: String = checksum_of(&rest).map(char::from).into_iter().collect();
        format!("{rest}{checksum}")
    }

    fn valid_token() -> impl Strategy<Value = String> {
        (proptest::sample::select(TokenKind::ALL.to_vec()), "[0-9A-Za-z]{32}")
            .prop_map(|(kind, body)| token_from(kind, &body))
    }

    /// Strings close to the format: right or wrong prefixes, lengths around 42, base62 with a
    /// sprinkling of other characters.
    fn near_miss() -> impl Strategy<Value = String> {
        let wrong = (
            prop_oneof![
                Just("cst_"),
                Just("csa_"),
                Just("csm_"),
                Just("csi_"),
                Just("CST_"),
                Just("cst"),
                Just("csb_"),
                Just("ghp_"),
                Just(""),
                Just(" cst_"),
            ],
            "[0-9A-Za-z]{30,40}|[0-9A-Za-z_\\- é\u{0}]{36,40}",
        )
            .prop_map(|(prefix, rest)| format!("{prefix}{rest}"));
        // Valid tokens too, bare and padded, so both answers of the reference are exercised.
        prop_oneof![
            3 => wrong,
            1 => valid_token(),
            1 => (valid_token(), "[ \t\n]{1,2}").prop_map(|(t, pad)| format!("{pad}{t}{pad}")),
        ]
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, char),
        Insert(usize, char),
        Delete(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..48usize, any::<char>()).prop_map(|(at, c)| Edit::Replace(at, c)),
            (0..48usize, any::<char>()).prop_map(|(at, c)| Edit::Insert(at, c)),
            (0..48usize).prop_map(Edit::Delete),
        ]
    }

    fn apply(token: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = token.chars().collect();
        for edit in edits {
            match *edit {
                Edit::Replace(at, c) if !chars.is_empty() => {
                    let at = at % chars.len();
                    chars[at] = c;
                }
                Edit::Insert(at, c) => chars.insert(at % (chars.len() + 1), c),
                Edit::Delete(at) if !chars.is_empty() => {
                    let at = at % chars.len();
                    chars.remove(at);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    /// What a successful parse must satisfy, whatever the input.
    fn check_parse(input: &str) -> Result<(), TestCaseError> {
        let parsed = PlainToken::parse(input);
        prop_assert_eq!(parsed.is_ok(), reference_is_valid(input), "input {:?}", input);
        if let Ok(token) = parsed {
            prop_assert_eq!(token.expose(), input.trim());
            let kind = match &input.trim()[..4] {
                "cst_" => TokenKind::Mcp,
                "csa_" => TokenKind::Owner,
                "csm_" => TokenKind::Member,
                _ => TokenKind::Invitation,
            };
            prop_assert_eq!(token.kind(), kind);
        }
        Ok(())
    }

    proptest! {
        // No regression files: a failure prints its minimal input, which is what to keep.
        #![proptest_config(ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_strings_never_panic_and_parse_only_when_valid(input in any::<String>()) {
            check_parse(&input)?;
        }

        #[test]
        fn near_misses_parse_only_when_valid(input in near_miss()) {
            check_parse(&input)?;
        }

        #[test]
        fn arbitrary_bytes_as_lossy_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            check_parse(&String::from_utf8_lossy(&bytes))?;
        }

        #[test]
        fn valid_tokens_round_trip(token in valid_token(), pad in "[ \t\r\n]{0,3}") {
            prop_assert!(reference_is_valid(&token));
            let parsed = PlainToken::parse(&token).expect("a valid token parses");
            prop_assert_eq!(parsed.expose(), token.as_str());
            prop_assert_eq!(PlainToken::parse(parsed.expose()), Ok(parsed.clone()));
            // Surrounding whitespace (a pasted newline) is ignored.
            prop_assert_eq!(PlainToken::parse(&format!("{pad}{token}{pad}")), Ok(parsed.clone()));
            prop_assert_eq!(parsed.display_prefix(), &token[..DISPLAY_PREFIX_LEN]);
            prop_assert_eq!(parsed.hash(), PlainToken::parse(&token).expect("again").hash());
            // Nothing past the prefix shows in Debug or Display.
            for shown in [format!("{parsed:?}"), format!("{parsed}"), format!("{:?}", parsed.hash())] {
                prop_assert!(!shown.contains(&token[4..10]), "{}", shown);
            }
        }

        #[test]
        fn any_single_character_substitution_is_rejected(
            token in valid_token(),
            at in 0..42usize,
            replacement in any::<char>(),
        ) {
            let original = token.as_bytes()[at] as char;
            prop_assume!(replacement != original);
            let changed = apply(&token, &[Edit::Replace(at, replacement)]);
            prop_assert!(PlainToken::parse(&changed).is_err(), "{:?} was accepted", changed);
            check_parse(&changed)?;
        }

        #[test]
        fn any_single_deletion_is_rejected(token in valid_token(), at in 0..42usize) {
            let changed = apply(&token, &[Edit::Delete(at)]);
            let expected = if at < 4 {
                TokenFormatError::UnknownPrefix
            } else {
                TokenFormatError::WrongLength
            };
            prop_assert_eq!(PlainToken::parse(&changed), Err(expected));
        }

        #[test]
        fn any_single_insertion_is_rejected_unless_it_is_surrounding_whitespace(
            token in valid_token(),
            at in 0..=42usize,
            inserted in any::<char>(),
        ) {
            let changed = apply(&token, &[Edit::Insert(at, inserted)]);
            let harmless = (at == 0 || at == 42) && inserted.is_whitespace();
            prop_assert_eq!(PlainToken::parse(&changed).is_ok(), harmless, "{:?}", changed);
        }

        #[test]
        fn swapping_two_different_neighbours_is_rejected(token in valid_token(), at in 0..41usize) {
            // Within the checksummed part CRC32 catches every such burst, and within the
            // checksum the digits themselves differ; straddling the two is left out, where a
            // coincidence is possible in principle (about 1 in 2^32).
            prop_assume!(at != 35);
            let mut bytes = token.clone().into_bytes();
            prop_assume!(bytes[at] != bytes[at + 1]);
            bytes.swap(at, at + 1);
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert!(PlainToken::parse(&changed).is_err(), "{:?} was accepted", changed);
        }

        #[test]
        fn edited_tokens_parse_only_when_the_edits_cancel_out(
            token in valid_token(),
            edits in proptest::collection::vec(edit(), 1..6),
        ) {
            let changed = apply(&token, &edits);
            check_parse(&changed)?;
            prop_assert_eq!(PlainToken::parse(&changed).is_ok(), changed.trim() == token);
        }
    }

    #[test]
    fn generated_tokens_are_valid_under_the_reference_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000 {
            let kind = TokenKind::ALL[i % TokenKind::ALL.len()];
            let token = PlainToken::generate(kind);
            assert!(reference_is_valid(token.expose()), "{}", token.expose());
            assert!(seen.insert(token.expose().to_owned()), "a repeated token");
        }
    }

    #[test]
    fn a_token_pasted_with_bearer_or_quotes_is_explained() {
        let token = PlainToken::generate(TokenKind::Mcp);
        let t = token.expose();
        for (input, want) in [
            (format!("Bearer {t}"), TokenFormatError::BearerPrefix),
            (format!("\"{t}\""), TokenFormatError::Quoted),
            (format!("'{t}'"), TokenFormatError::Quoted),
        ] {
            let error = PlainToken::parse(&input).expect_err("refused");
            assert_eq!(error, want);
            assert!(!error.to_string().contains(t), "the token is not repeated");
        }
    }
}
