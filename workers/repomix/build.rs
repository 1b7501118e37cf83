//! Turns the o200k_base vocabulary (data/o200k_base.tiktoken.gz: one `base64-token rank` line per
//! token, as tiktoken distributes it) into a ready-made hash table the component embeds, so a job
//! starts counting without building anything (each job is a fresh instance: a table built at run
//! time was rebuilt per job). Three little-endian blobs:
//! - `o200k_tokens.bin`: every token's bytes, in rank order;
//! - `o200k_offsets.bin`: u32 start of each rank's bytes in the former, plus the end;
//! - `o200k_slots.bin`: 2^SLOT_BITS u32 slots, `rank + 1` (0: empty) under a hash tag, open
//!   addressing with linear probing from `slot_and_tag(bytes)` (src/tokens/hash.rs, shared with
//!   the guest);
//! - `o200k_pairs.bin`: the rank of every two-byte string (u32::MAX: not a token), indexed by
//!   `first << 8 | second`: the first lookups of every merge, without hashing.

use std::io::Read;

use base64::Engine;

include!("src/tokens/hash.rs");

fn main() {
    let src = "data/o200k_base.tiktoken.gz";
    println!("cargo::rerun-if-changed={src}");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/tokens/hash.rs");
    let gz = std::fs::read(src).unwrap_or_else(|e| panic!("reading {src}: {e}"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap_or_else(|e| panic!("gunzip {src}: {e}"));
    let mut tokens = Vec::with_capacity(3 << 20);
    let mut offsets: Vec<u32> = Vec::with_capacity(200_001);
    let mut slots = vec![0u32; 1 << SLOT_BITS];
    let mut pairs = vec![u32::MAX; 1 << 16];
    for (n, line) in text.lines().enumerate() {
        let (token, rank) = line.split_once(' ').unwrap_or_else(|| panic!("{src}:{}: no rank", n + 1));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap_or_else(|e| panic!("{src}:{}: base64: {e}", n + 1));
        let rank: u32 = rank.trim().parse().unwrap_or_else(|e| panic!("{src}:{}: rank: {e}", n + 1));
        // The offsets table is indexed by rank: o200k's ranks are 0, 1, 2, ... in file order.
        assert_eq!(rank as usize, n, "{src}:{}: ranks are not consecutive", n + 1);
        offsets.push(u32::try_from(tokens.len()).expect("the vocabulary is under 4 GiB"));
        tokens.extend_from_slice(&bytes);
        let (mut slot, tag) = slot_and_tag(&bytes);
        while slots[slot] != 0 {
            slot = (slot + 1) & ((1 << SLOT_BITS) - 1);
        }
        assert!(rank + 1 < (1 << RANK_BITS), "{src}:{}: rank too large for the table", n + 1);
        slots[slot] = tag | (rank + 1);
        if let [a, b] = bytes[..] {
            pairs[usize::from(a) << 8 | usize::from(b)] = rank;
        }
    }
    assert!(offsets.len() < (1 << SLOT_BITS) / 2, "{src}: too many tokens for the table");
    offsets.push(u32::try_from(tokens.len()).expect("the vocabulary is under 4 GiB"));
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    let le = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(out.join("o200k_tokens.bin"), &tokens).expect("writing the vocabulary tokens");
    std::fs::write(out.join("o200k_offsets.bin"), le(&offsets)).expect("writing the vocabulary offsets");
    std::fs::write(out.join("o200k_slots.bin"), le(&slots)).expect("writing the vocabulary slots");
    std::fs::write(out.join("o200k_pairs.bin"), le(&pairs)).expect("writing the vocabulary pairs");
}
