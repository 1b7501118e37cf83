//! Turns the o200k_base vocabulary (data/o200k_base.tiktoken.gz: one `base64-token rank` line per
//! token, as tiktoken distributes it) into a compact blob the component embeds: per token a
//! little-endian u32 rank, a u16 length and the token's bytes. The guest builds its rank table from
//! it on first use (a few milliseconds), instead of carrying prebuilt hash tables (tens of MB).

use std::io::Read;

use base64::Engine;

fn main() {
    let src = "data/o200k_base.tiktoken.gz";
    println!("cargo::rerun-if-changed={src}");
    println!("cargo::rerun-if-changed=build.rs");
    let gz = std::fs::read(src).unwrap_or_else(|e| panic!("reading {src}: {e}"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap_or_else(|e| panic!("gunzip {src}: {e}"));
    let mut blob = Vec::with_capacity(3 << 20);
    for (n, line) in text.lines().enumerate() {
        let (token, rank) = line.split_once(' ').unwrap_or_else(|| panic!("{src}:{}: no rank", n + 1));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap_or_else(|e| panic!("{src}:{}: base64: {e}", n + 1));
        let rank: u32 = rank.trim().parse().unwrap_or_else(|e| panic!("{src}:{}: rank: {e}", n + 1));
        let len = u16::try_from(bytes.len()).unwrap_or_else(|_| panic!("{src}:{}: token too long", n + 1));
        blob.extend_from_slice(&rank.to_le_bytes());
        blob.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(&bytes);
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    std::fs::write(out.join("o200k_base.bin"), blob).expect("writing the vocabulary blob");
}
