//! gzip for an answer that is a large constant around a small per-request part, without
//! compressing per request.
//!
//! A `tools/list` answer is `{"jsonrpc":"2.0","id":<ID>,"result":<RESULT>}`: ~20 KB of which
//! only the id varies. Deflating 20 KB costs 150-270 µs (miniz_oxide, fast to default level),
//! far more than the rest of the request, so the result is deflated once
//! ([`Precompressed::new`]) and each answer is a gzip member (RFC 1952) spliced from parts
//! ([`Precompressed::wrap`], well under a microsecond):
//!
//! ```text
//! header | stored block(s): the text before | the result, deflated once | final stored block:
//! the text after | CRC-32 | ISIZE
//! ```
//!
//! Why the spliced deflate stream (RFC 1951) is valid:
//! - The stream is byte-aligned wherever a stored block starts (after the header, after a stored
//!   block, after a sync flush), so a stored block's three header bits (BFINAL, BTYPE = 00) and
//!   their padding make one byte: 0x00, or 0x01 for the final block.
//! - The result is deflated by a fresh compressor, so its back-references never reach before its
//!   own start: what precedes it in the spliced stream does not change what it decodes to.
//! - It ends with a sync flush, not a finish: its last block is closed by an empty stored block,
//!   so it ends byte-aligned, and none of its blocks is final.
//!
//! The CRC-32 of the whole text is combined from the parts', so the result is never hashed again
//! either. Combining is linear (zlib's `crc32_combine`: `crc(A‖T) = M(crc(A)) ⊕ crc(T)`, with `M`
//! a 32×32 bit matrix that depends only on the length of `T`), so `M` is worked out once, as its
//! 32 columns, and applying it costs 32 conditional XORs rather than `combine`'s ~3,000
//! instructions of matrix squaring per answer.

use axum::http::{HeaderMap, header};
use crc32fast::Hasher;
use flate2::{Compress, CompressError, Compression, FlushCompress};

/// A gzip member header: magic, CM = 8 (deflate), no flags, MTIME = 0 (none), XFL = 0,
/// OS = 255 (unknown).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// The most a stored block holds: its LEN is 16 bits.
const MAX_STORED: usize = u16::MAX as usize;

/// A constant text deflated once, to be sent inside any number of gzip answers.
pub struct Precompressed {
    /// Raw deflate (no zlib header), ending with a sync flush: byte-aligned, no final block.
    deflated: Vec<u8>,
    /// The CRC-32 of the text.
    crc: u32,
    /// `shift[i]`: the CRC-32 of (any text whose CRC-32 is `1 << i`, then this text) XOR `crc`;
    /// see [`Precompressed::append_to`].
    shift: [u32; 32],
    len: usize,
}

impl Precompressed {
    pub fn new(text: &[u8]) -> Result<Self, CompressError> {
        // `false`: raw deflate, without a zlib header. Best compression: this runs once.
        let mut compressor = Compress::new(Compression::best(), false);
        let mut deflated = Vec::with_capacity(text.len() / 4 + 64);
        loop {
            // The compressor has taken the first `total_in` bytes (never more than there are).
            let rest = &text[compressor.total_in() as usize..];
            compressor.compress_vec(rest, &mut deflated, FlushCompress::Sync)?;
            // zlib's rule: a flush that leaves output space unused has nothing left pending.
            if compressor.total_in() as usize == text.len() && deflated.len() < deflated.capacity()
            {
                break;
            }
            deflated.reserve(deflated.capacity());
        }
        let len = text.len() as u64;
        let shift = std::array::from_fn(|bit| {
            let mut before = Hasher::new_with_initial_len(1 << bit, 0);
            before.combine(&Hasher::new_with_initial_len(0, len));
            before.finalize()
        });
        Ok(Self { deflated, crc: crc32fast::hash(text), shift, len: text.len() })
    }

    /// The CRC-32 of (a text whose CRC-32 is `before`, then this text).
    fn append_to(&self, before: u32) -> u32 {
        (0..32).fold(self.crc, |crc, bit| {
            // All ones when the bit is set, else zero: no branch on the data.
            let mask = 0u32.wrapping_sub((before >> bit) & 1);
            crc ^ (self.shift[bit] & mask)
        })
    }

    /// The gzip member whose content is `before`, then the text, then `after`.
    pub fn wrap(&self, before: &[u8], after: &[u8]) -> Vec<u8> {
        let stored = |bytes: &[u8]| bytes.len() + 5 * (bytes.len() / MAX_STORED + 1);
        let mut out = Vec::with_capacity(
            HEADER.len() + stored(before) + self.deflated.len() + stored(after) + 8,
        );
        out.extend_from_slice(&HEADER);
        push_stored(&mut out, before, false);
        out.extend_from_slice(&self.deflated);
        push_stored(&mut out, after, true);

        let mut crc = Hasher::new_with_initial(self.append_to(crc32fast::hash(before)));
        crc.update(after);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32: the truncating cast is its definition.
        let size = (before.len() + self.len + after.len()) as u32;
        out.extend_from_slice(&size.to_le_bytes());
        out
    }
}

/// Appends `data` as deflate stored blocks of at most 65,535 bytes (RFC 1951 §3.2.4): each is
/// the header byte, LEN and NLEN (its one's complement) little-endian, then the bytes. The last
/// block is final when `last`; an empty `data` adds nothing unless a final block is needed.
fn push_stored(out: &mut Vec<u8>, data: &[u8], last: bool) {
    let mut rest = data;
    loop {
        let (block, tail) = rest.split_at(rest.len().min(MAX_STORED));
        let is_final = last && tail.is_empty();
        if block.is_empty() && !is_final {
            return;
        }
        let len = block.len() as u16; // at most MAX_STORED, by the split
        out.push(u8::from(is_final));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
        if tail.is_empty() {
            return;
        }
        rest = tail;
    }
}

/// Whether the request's `Accept-Encoding` admits gzip (RFC 9110 §12.5.3). The field is a comma
/// list of codings, each with an optional weight (`;q=`); several fields count as one list.
/// `gzip` (or its alias `x-gzip`) with a nonzero weight admits it, with `q=0` refuses it; `*`
/// speaks for every coding not listed by name. Without the field the answer is not compressed:
/// the RFC would allow it, but a client that says nothing may not expect it.
pub fn accepted(headers: &HeaderMap) -> bool {
    // The verdict of the entries naming gzip, and of the `*` entries, if any.
    let mut named = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        // A field that is not visible ASCII lists nothing we can read.
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let admits = !parts.any(is_zero_weight);
            let verdict =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut named
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            *verdict = Some(verdict.unwrap_or(false) || admits);
        }
    }
    named.or(any).unwrap_or(false)
}

/// Whether a coding's parameter is a weight of zero (`q=0`, `Q=0.000`). A weight that is not a
/// number in (0, 1] counts as zero: what the client meant cannot be told.
fn is_zero_weight(parameter: &str) -> bool {
    let Some((name, value)) = parameter.split_once('=') else { return false };
    name.trim().eq_ignore_ascii_case("q")
        && !value.trim().parse::<f32>().is_ok_and(|q| q > 0.0 && q <= 1.0)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use axum::http::HeaderValue;
    use flate2::read::{GzDecoder, MultiGzDecoder};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::Access;
    use crate::mcp::tools::list_result_json;
    use crate::mcp::{list_answer_gzip, success_text};

    /// Decodes one gzip member with both of flate2's decoders, which check the CRC-32 and ISIZE
    /// in the trailer and fail on a mismatch or a missing trailer.
    fn gunzip(stream: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        let mut single = Vec::new();
        GzDecoder::new(stream).read_to_end(&mut single)?;
        let mut multi = Vec::new();
        MultiGzDecoder::new(stream).read_to_end(&mut multi)?;
        assert_eq!(single, multi);
        Ok(single)
    }

    /// The gzip answer to `tools/list` with `id` decodes to exactly the plain answer.
    fn check_list_answer(id: &Value, access: Access) {
        let plain = success_text(id, list_result_json(access));
        let stream = list_answer_gzip(id, access).expect("tools/list is pre-compressed");
        let decoded = gunzip(&stream).expect("a valid gzip member");
        assert!(decoded == plain.as_bytes(), "id {id}: the decoded answer differs");
    }

    #[test]
    fn list_answers_decode_to_the_plain_answer_for_any_id() {
        let long = "x\"é😀".repeat(20_000); // > 70,000 bytes: the prefix needs several blocks
        for id in [
            json!(1),
            json!(0),
            json!(-7),
            json!(123_456_789_012_345_678_i64),
            json!(2.5),
            json!(""),
            json!("a \"quoted\" \\ id"),
            json!("ünïcödé ✓ 😀 \u{202e}"),
            json!(long),
        ] {
            for access in [Access::ReadWrite, Access::ReadOnly] {
                check_list_answer(&id, access);
            }
        }
    }

    #[test]
    fn the_result_is_compressed_once_and_well() {
        let plain = list_result_json(Access::ReadWrite);
        let stream = list_answer_gzip(&json!(1), Access::ReadWrite).expect("pre-compressed");
        assert!(stream.len() * 4 < plain.len(), "{} of {} bytes", stream.len(), plain.len());
    }

    #[test]
    fn stored_blocks_split_at_65535_bytes_and_end_final() {
        let text = Precompressed::new(b"middle").expect("compress");
        for (before, after) in
            [(0, 0), (1, 1), (MAX_STORED, 0), (MAX_STORED + 1, MAX_STORED), (0, 2 * MAX_STORED + 3)]
        {
            let (before, after) = (vec![b'b'; before], vec![b'a'; after]);
            let stream = text.wrap(&before, &after);
            let want = [before.as_slice(), b"middle", after.as_slice()].concat();
            assert!(gunzip(&stream).expect("valid") == want, "{} + {}", before.len(), after.len());
        }
        // An empty text is fine too.
        let empty = Precompressed::new(b"").expect("compress");
        assert_eq!(gunzip(&empty.wrap(b"{", b"}")).expect("valid"), b"{}");
    }

    #[test]
    fn an_incompressible_text_is_deflated_in_several_rounds() {
        // Deflates to more than the first output buffer (a quarter of the text), so the
        // compression loop must grow it and go on.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let text: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let precompressed = Precompressed::new(&text).expect("compress");
        assert!(precompressed.deflated.len() > text.len() / 4 + 64);
        let want = [b"<".as_slice(), &text, b">"].concat();
        assert!(gunzip(&precompressed.wrap(b"<", b">")).expect("valid") == want);
    }

    #[test]
    fn a_wrong_checksum_or_size_is_caught_by_the_decoders() {
        // Proves the tests above check the trailer: each corruption must fail to decode.
        let stream = list_answer_gzip(&json!(1), Access::ReadWrite).expect("pre-compressed");
        let n = stream.len();
        for at in [n - 8, n - 5, n - 4, n - 1] {
            let mut bad = stream.clone();
            bad[at] ^= 1;
            assert!(gunzip(&bad).is_err(), "a flipped bit at {at} of {n} went unnoticed");
        }
        assert!(gunzip(&stream[..n - 8]).is_err(), "a missing trailer went unnoticed");
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn the_precomputed_shift_agrees_with_combine(before in any::<Vec<u8>>(), text in any::<Vec<u8>>()) {
            let precompressed = Precompressed::new(&text).expect("compress");
            let mut want = Hasher::new();
            want.update(&before);
            want.update(&text);
            prop_assert_eq!(precompressed.append_to(crc32fast::hash(&before)), want.finalize());
        }

        #[test]
        fn any_string_id_decodes_to_the_plain_answer(id in any::<String>()) {
            check_list_answer(&Value::String(id), Access::ReadOnly);
        }

        #[test]
        fn any_number_id_decodes_to_the_plain_answer(id in any::<i64>(), x in any::<f64>()) {
            check_list_answer(&json!(id), Access::ReadWrite);
            check_list_answer(&json!(x), Access::ReadWrite); // NaN and infinities become null
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(value).expect("ascii"));
        }
        headers
    }

    #[test]
    fn accept_encoding_admits_gzip_only_when_it_says_so() {
        for (fields, admits) in [
            (&[][..], false),
            (&[""][..], false),
            (&["gzip"][..], true),
            (&["GZip"][..], true),
            (&["x-gzip"][..], true),
            (&["gzip, deflate, br, zstd"][..], true), // Node's fetch (undici)
            (&["gzip, deflate"][..], true),           // Python's httpx
            (&["gzip;q=0"][..], false),
            (&["gzip; Q=0.000"][..], false),
            (&["gzip;q=0.001"][..], true),
            (&["gzip;q=1.0"][..], true),
            (&["gzip;q=banana"][..], false),
            (&["gzip;q=2"][..], false),
            (&["identity"][..], false),
            (&["deflate, br"][..], false),
            (&["gzipx, xgzip"][..], false),
            (&["*"][..], true),
            (&["*;q=0"][..], false),
            (&["*, gzip;q=0"][..], false),
            (&["gzip, *;q=0"][..], true),
            (&["br, gzip;q=0.5"][..], true),
            (&[" br ;q=1 , gzip ; q=0.5 "][..], true),
            (&["br", "gzip"][..], true),
            (&["gzip;q=0", "*"][..], false),
            (&["identity", "*;q=0.1"][..], true),
        ] {
            assert_eq!(accepted(&headers(fields)), admits, "Accept-Encoding: {fields:?}");
        }
    }
}
