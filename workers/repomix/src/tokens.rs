//! Token counts with OpenAI's o200k encoding, as the repomix CLI reports them (it counts with
//! `gpt-tokenizer`'s o200k_base, special tokens encoded as plain text): tiktoken's algorithm.
//!
//! - Pre-tokenizer: o200k's split pattern. It has a negative look-ahead (`\s+(?!\S)`), which
//!   `regex-automata` lacks; as in the `bpe-openai` crate (MIT), the look-ahead is emulated with a
//!   second pattern that matches one character more and gives it back.
//! - Byte-pair merges: tiktoken's rank-ordered merge over each piece, with the vocabulary built into
//!   the component (build.rs) and loaded into a rank table on first use.
//!
//! Source code repeats the same pieces (indentation, keywords, common identifiers) over and over,
//! so counts per piece are memoised for the job.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

/// The vocabulary blob written by build.rs.
static VOCAB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.bin"));

/// FxHash (rustc's): token keys are short byte strings, hashed many times per file.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

struct Encoding {
    ranks: FxMap<&'static [u8], u32>,
    split: Regex,
    /// Per split pattern: whether its last character is a look-ahead to give back.
    lookahead: [bool; 3],
}

static O200K: LazyLock<Encoding> = LazyLock::new(|| {
    let mut ranks = FxMap::default();
    ranks.reserve(200_000);
    let mut at = 0;
    while at + 6 <= VOCAB.len() {
        let rank = u32::from_le_bytes([VOCAB[at], VOCAB[at + 1], VOCAB[at + 2], VOCAB[at + 3]]);
        let len = u16::from_le_bytes([VOCAB[at + 4], VOCAB[at + 5]]) as usize;
        ranks.insert(&VOCAB[at + 6..at + 6 + len], rank);
        at += 6 + len;
    }
    let words = [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+$",
    ]
    .join("|");
    // A constant pattern set; a failure is a programming error caught by every test.
    let split = Regex::new_many(&[words.as_str(), r"\s+\s", r"\s+"]).expect("the o200k split patterns compile");
    Encoding { ranks, split, lookahead: [false, true, false] }
});

impl Encoding {
    /// Pieces of `text` as o200k's pre-tokenizer splits it.
    fn pieces<'t>(&self, text: &'t str) -> impl Iterator<Item = &'t str> + use<'t, '_> {
        let mut last = 0;
        std::iter::from_fn(move || {
            let m = self.split.find(Input::new(&text[last..]).anchored(Anchored::Yes))?;
            let start = last;
            let mut end = last + m.range().end;
            if self.lookahead[m.pattern().as_usize()]
                && let Some(c) = text[start..end].chars().next_back()
            {
                end -= c.len_utf8();
            }
            if end == start {
                return None;
            }
            last = end;
            Some(&text[start..end])
        })
    }

    fn rank(&self, bytes: &[u8]) -> u32 {
        self.ranks.get(bytes).copied().unwrap_or(u32::MAX)
    }

    /// Tokens of one piece: tiktoken's `byte_pair_merge`.
    fn piece_tokens(&self, piece: &[u8]) -> usize {
        if piece.len() <= 1 || self.ranks.contains_key(piece) {
            return 1.min(piece.len());
        }
        // (start of part, rank of merging it with the next part)
        let mut parts: Vec<(usize, u32)> = Vec::with_capacity(piece.len() + 1);
        for i in 0..piece.len() - 1 {
            parts.push((i, self.rank(&piece[i..i + 2])));
        }
        parts.push((piece.len() - 1, u32::MAX));
        parts.push((piece.len(), u32::MAX));
        let pair_rank = |parts: &[(usize, u32)], i: usize| {
            if i + 3 < parts.len() { self.rank(&piece[parts[i].0..parts[i + 3].0]) } else { u32::MAX }
        };
        loop {
            let (mut min, mut at) = (u32::MAX, 0);
            for (i, &(_, r)) in parts[..parts.len() - 1].iter().enumerate() {
                if r < min {
                    (min, at) = (r, i);
                }
            }
            if min == u32::MAX {
                break;
            }
            if at > 0 {
                parts[at - 1].1 = pair_rank(&parts, at - 1);
            }
            parts[at].1 = pair_rank(&parts, at);
            parts.remove(at + 1);
        }
        parts.len() - 1
    }
}

/// A token counter with a per-job cache of piece counts.
pub struct Counter {
    encoding: &'static Encoding,
    cache: FxMap<Box<str>, u32>,
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl Counter {
    /// A counter over the o200k_base encoding (loads the vocabulary on first use).
    pub fn new() -> Self {
        Self { encoding: &O200K, cache: FxMap::default() }
    }

    /// Tokens of `text` (no special tokens: `<|endoftext|>` counts as plain text).
    pub fn count(&mut self, text: &str) -> u64 {
        let enc = self.encoding;
        let mut total = 0u64;
        for piece in enc.pieces(text) {
            // Long pieces (runs of whitespace or symbols) rarely repeat: count them directly.
            if piece.len() > 32 {
                total += enc.piece_tokens(piece.as_bytes()) as u64;
                continue;
            }
            if let Some(&n) = self.cache.get(piece) {
                total += n as u64;
                continue;
            }
            let n = enc.piece_tokens(piece.as_bytes()) as u32;
            self.cache.insert(piece.into(), n);
            total += n as u64;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_cli_on_known_strings() {
        let mut c = Counter::new();
        // Figures from gpt-tokenizer's o200k_base (what the repomix 1.14.1 CLI counts with).
        for (text, want) in CASES {
            assert_eq!(c.count(text), *want, "{text:?}");
            // Cached and uncached paths agree.
            assert_eq!(c.count(text), *want, "{text:?} (cached)");
        }
    }

    const CASES: &[(&str, u64)] = &[
        ("", 0),
        ("hello world", 2),
        ("fn main() {\n    println!(\"hi\");\n}\n", 10),
        ("héllo wörld 日本語のテキスト", 11),
        ("<|endoftext|> is plain text here", 11),
        ("    \n\n  \t  x", 4),
        ("1234567 3.14159", 8),
        ("don't I'll WE'RE", 5),
        ("line one\r\nline two\r\n", 6),
        ("const x = a?.b ?? c; // comment\n\t\treturn `t${x}`;", 20),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 6),
        ("🙂🚀 emoji ẞtraße", 9),
    ];
}
