// The vocabulary table's hash and layout, shared by build.rs (which lays the table out) and the
// guest (which probes it): both include this file, so they cannot disagree.

/// log2 of the table's slot count: 2^19 slots for o200k's ~200k tokens (load ~0.38, short probes).
pub const SLOT_BITS: u32 = 19;
/// A slot holds `rank + 1` in its low RANK_BITS (0: empty) and a tag of the hash above them, so a
/// probe compares bytes only when the tags agree.
pub const RANK_BITS: u32 = 18;

/// The home slot and the tag (already shifted into place) of a byte string: FxHash-style
/// (rustc's) over 8-byte words, seeded with the length; the slot is the top bits, the tag the next.
#[inline]
pub fn slot_and_tag(bytes: &[u8]) -> (usize, u32) {
    let mut h = bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    let tag_bits = 32 - RANK_BITS;
    let tag = ((h >> (64 - SLOT_BITS - tag_bits)) as u32 & ((1 << tag_bits) - 1)) << RANK_BITS;
    ((h >> (64 - SLOT_BITS)) as usize, tag)
}
