//! Token counts with OpenAI's o200k encoding, as the repomix CLI reports them (it counts with
//! `gpt-tokenizer`'s o200k_base, special tokens encoded as plain text).
//!
//! `bpe-openai` carries the vocabulary inside the component (serialised at build time), splits
//! text with the o200k pre-tokenizer and counts each piece with exact BPE. Source code repeats
//! the same pieces (indentation, keywords, common identifiers) over and over, so counts per piece
//! are memoised for the job.

use std::collections::HashMap;

/// A token counter with a per-job cache of piece counts.
pub struct Counter {
    tokenizer: &'static bpe_openai::Tokenizer,
    cache: HashMap<Box<str>, u32>,
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl Counter {
    /// A counter over the o200k_base encoding (loads the vocabulary on first use).
    pub fn new() -> Self {
        Self { tokenizer: bpe_openai::o200k_base(), cache: HashMap::new() }
    }

    /// Tokens of `text` (no special tokens: `<|endoftext|>` counts as plain text).
    pub fn count(&mut self, text: &str) -> u64 {
        let mut total = 0u64;
        for piece in self.tokenizer.split(text) {
            // Long pieces (runs of whitespace or symbols) rarely repeat: count them directly.
            if piece.len() > 32 {
                total += self.tokenizer.bpe.count(piece.as_bytes()) as u64;
                continue;
            }
            if let Some(&n) = self.cache.get(piece) {
                total += n as u64;
                continue;
            }
            let n = self.tokenizer.bpe.count(piece.as_bytes()) as u32;
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
        // Figures from the repomix 1.14.1 CLI (gpt-tokenizer o200k_base) on the same text.
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("hello world"), 2);
        // Cached and uncached paths agree.
        assert_eq!(c.count("hello world"), 2);
    }
}
