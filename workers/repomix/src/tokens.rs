//! Token counts with OpenAI's o200k encoding, as the repomix CLI reports them (it counts with
//! `gpt-tokenizer`'s o200k_base, special tokens encoded as plain text): tiktoken's algorithm.
//!
//! - Pre-tokenizer: o200k's split pattern. It has a negative look-ahead (`\s+(?!\S)`), which
//!   `regex-automata` lacks; as in the `bpe-openai` crate (MIT), the look-ahead is emulated with a
//!   second pattern that matches one character more and gives it back.
//! - Byte-pair merges: tiktoken's rank-ordered merge over each piece (through a heap for long
//!   pieces), with the vocabulary's hash table laid out by build.rs and embedded in the component,
//!   so a job (a fresh instance) builds no table before counting.
//!
//! Source code repeats the same pieces (indentation, keywords, common identifiers) over and over,
//! so counts per piece are memoised for the job.

mod hash;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

/// The vocabulary table written by build.rs: token bytes in rank order, their u32 offsets, and
/// the u32 hash slots (`rank + 1`).
static TOKENS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_tokens.bin"));
static OFFSETS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_offsets.bin"));
static SLOTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_slots.bin"));
static PAIRS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_pairs.bin"));

/// Pieces longer than this merge through a heap (O(n log n)) instead of tiktoken's rescans
/// (O(n²): a 9 kB run of emoji in a test file took 300 ms), with the same result.
const HEAP_MERGE_FROM: usize = 96;

/// FxHash (rustc's): cache keys are short strings, hashed once per piece.
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

/// The n-th little-endian u32 of a blob.
#[inline(always)]
fn u32_at(blob: &[u8], n: usize) -> u32 {
    match blob.get(n * 4..n * 4 + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The rank of a token's bytes, if they are one (a probe of build.rs's table; nothing to load).
#[inline]
fn vocab_rank(bytes: &[u8]) -> Option<u32> {
    if let [a, b] = *bytes {
        let r = u32_at(PAIRS, usize::from(a) << 8 | usize::from(b));
        return (r != u32::MAX).then_some(r);
    }
    let mask = (1usize << hash::SLOT_BITS) - 1;
    let rank_mask = (1u32 << hash::RANK_BITS) - 1;
    let (mut slot, tag) = hash::slot_and_tag(bytes);
    loop {
        let entry = u32_at(SLOTS, slot);
        if entry == 0 {
            return None;
        }
        if entry & !rank_mask == tag {
            let rank = (entry & rank_mask) - 1;
            let (start, end) = (u32_at(OFFSETS, rank as usize) as usize, u32_at(OFFSETS, rank as usize + 1) as usize);
            if TOKENS.get(start..end) == Some(bytes) {
                return Some(rank);
            }
        }
        slot = (slot + 1) & mask;
    }
}

struct Encoding {
    split: Regex,
    /// Per split pattern: whether its last character is a look-ahead to give back.
    lookahead: [bool; 3],
}

static O200K: LazyLock<Encoding> = LazyLock::new(|| {
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
    Encoding { split, lookahead: [false, true, false] }
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
}

#[inline]
fn rank(bytes: &[u8]) -> u32 {
    vocab_rank(bytes).unwrap_or(u32::MAX)
}

/// Tokens of one piece (tiktoken's byte-pair merge: the lowest-ranked adjacent pair first, the
/// leftmost of equals).
fn piece_tokens(piece: &[u8]) -> usize {
    if piece.len() <= 1 || vocab_rank(piece).is_some() {
        return 1.min(piece.len());
    }
    if piece.len() >= HEAP_MERGE_FROM { heap_merge(piece) } else { scan_merge(piece) }
}

/// tiktoken's `byte_pair_merge`: rescans the parts for the lowest rank after each merge.
fn scan_merge(piece: &[u8]) -> usize {
    // (start of part, rank of merging it with the next part)
    let mut parts: Vec<(usize, u32)> = Vec::with_capacity(piece.len() + 1);
    for i in 0..piece.len() - 1 {
        parts.push((i, rank(&piece[i..i + 2])));
    }
    parts.push((piece.len() - 1, u32::MAX));
    parts.push((piece.len(), u32::MAX));
    let pair_rank = |parts: &[(usize, u32)], i: usize| {
        if i + 3 < parts.len() { rank(&piece[parts[i].0..parts[i + 3].0]) } else { u32::MAX }
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

/// The same merge order as [`scan_merge`] through a min-heap of (rank, start) over a linked list of
/// parts: the heap's least entry is the lowest rank, leftmost on ties (starts grow left to
/// right); entries whose pair has changed since are skipped when popped.
fn heap_merge(piece: &[u8]) -> usize {
    let n = piece.len();
    // Per byte position that starts a part: the next part's start (n past the last) and the
    // previous part's start; `pair[i]` is the rank of merging part i with its next part.
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut pair = vec![u32::MAX; n];
    let mut heap = BinaryHeap::with_capacity(n);
    for i in 0..n - 1 {
        pair[i] = rank(&piece[i..i + 2]);
        if pair[i] != u32::MAX {
            heap.push(Reverse((pair[i], i)));
        }
    }
    // The rank of merging the part at `i` with its next part, given the current links.
    let pair_rank = |next: &[usize], i: usize| {
        let j = next[i];
        if j >= n { u32::MAX } else { rank(&piece[i..next[j]]) }
    };
    let mut parts = n;
    while let Some(Reverse((r, i))) = heap.pop() {
        if pair[i] != r || next[i] >= n {
            continue;
        }
        // Merge part i with the next one (j): j stops being a part.
        let j = next[i];
        next[i] = next[j];
        if next[j] < n {
            prev[next[j]] = i;
        }
        pair[j] = u32::MAX;
        parts -= 1;
        pair[i] = pair_rank(&next, i);
        if pair[i] != u32::MAX {
            heap.push(Reverse((pair[i], i)));
        }
        let p = prev[i];
        if p < n {
            pair[p] = pair_rank(&next, p);
            if pair[p] != u32::MAX {
                heap.push(Reverse((pair[p], p)));
            }
        }
    }
    parts
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
                total += piece_tokens(piece.as_bytes()) as u64;
                continue;
            }
            if let Some(&n) = self.cache.get(piece) {
                total += n as u64;
                continue;
            }
            let n = piece_tokens(piece.as_bytes()) as u32;
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

    #[test]
    fn every_vocabulary_token_is_found_with_its_rank() {
        let count = (OFFSETS.len() / 4) - 1;
        assert_eq!(count, 199_998);
        for rank in 0..count as u32 {
            let bytes = &TOKENS[u32_at(OFFSETS, rank as usize) as usize..u32_at(OFFSETS, rank as usize + 1) as usize];
            assert_eq!(vocab_rank(bytes), Some(rank));
        }
        assert_eq!(vocab_rank(b"not one token at all, surely"), None);
        // Two-byte strings go through the pair table: every one of them, token or not.
        let mut two = std::collections::HashMap::new();
        for rank in 0..count as u32 {
            let (s, e) = (u32_at(OFFSETS, rank as usize) as usize, u32_at(OFFSETS, rank as usize + 1) as usize);
            if e - s == 2 {
                two.insert([TOKENS[s], TOKENS[s + 1]], rank);
            }
        }
        assert!(two.len() > 1000);
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(vocab_rank(&[a, b]), two.get(&[a, b]).copied(), "{a} {b}");
            }
        }
    }

    #[test]
    fn heap_merge_agrees_with_tiktokens_merge() {
        // Long pieces of every kind the pre-tokenizer makes: symbol runs, emoji, whitespace,
        // repeated letters (equal ranks side by side: the leftmost pair merges first).
        let mut pieces: Vec<String> = vec![
            "😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙😚☺️☺🙂🤗🤩🤔🤨😐😑😶🙄😏😣😥".repeat(3),
            "=".repeat(200),
            "ab".repeat(150),
            "a".repeat(257),
            " ".repeat(130),
            "-->>///***%%%$$$@@@!!!".repeat(6),
            "日本語のテキストとひらがな".repeat(5),
        ];
        // A deterministic pseudo-random mix of short token fragments.
        let alphabet = ["ab", "c", "de", "fgh", "=", "==", "😀", "é", " ", "x", "yz", "ẞ"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [97, 120, 200, 333, 500] {
            let mut s = String::new();
            while s.len() < len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            pieces.push(s);
        }
        for piece in &pieces {
            assert_eq!(heap_merge(piece.as_bytes()), scan_merge(piece.as_bytes()), "{piece:?}");
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
