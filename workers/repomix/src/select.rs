//! Which files get packed, and in which order: the repomix 1.14 CLI's selection, rule for rule.
//!
//! The CLI lists files with globby (fast-glob `**/*`, dot files included, symlinks not followed)
//! with three kinds of exclusion, reproduced here:
//! - glob ignore patterns (its default list, the custom `--ignore` patterns and the lines of
//!   `.git/info/exclude`), matched with fast-glob semantics against the path relative to the root:
//!   `*` never crosses `/`, a pattern without `**/` is anchored at the root, `a/**` also matches
//!   `a`, and a matching directory is not entered;
//! - ignore files with gitignore semantics: `.gitignore` (when `useGitignore`), `.ignore` (when
//!   `useDotIgnore`) and `.repomixignore` (always), in every folder;
//! - then, per file: a binary extension (the `binary-extensions` list), over the size limit, a NUL
//!   byte without a text BOM, or undecodable text.
//!
//! Order: the CLI's `sortPaths` (folders before files at each level, names by ICU collation).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// repomix 1.14's `defaultIgnoreList`.
pub const DEFAULT_IGNORES: &[&str] = &[
    ".git/**",
    ".hg/**",
    ".hgignore",
    ".svn/**",
    "**/node_modules/**",
    "**/bower_components/**",
    "**/jspm_packages/**",
    "vendor/**",
    "**/.bundle/**",
    "**/.gradle/**",
    "target/**",
    "logs/**",
    "**/*.log",
    "**/npm-debug.log*",
    "**/yarn-debug.log*",
    "**/yarn-error.log*",
    "pids/**",
    "*.pid",
    "*.seed",
    "*.pid.lock",
    "lib-cov/**",
    "coverage/**",
    ".nyc_output/**",
    ".grunt/**",
    ".lock-wscript",
    "build/Release/**",
    "typings/**",
    "**/.npm/**",
    ".eslintcache",
    ".rollup.cache/**",
    ".webpack.cache/**",
    ".parcel-cache/**",
    ".sass-cache/**",
    "*.cache",
    ".node_repl_history",
    "*.tgz",
    "**/.yarn/**",
    "**/.yarn-integrity",
    ".env",
    ".next/**",
    ".nuxt/**",
    ".vuepress/dist/**",
    ".serverless/**",
    ".fusebox/**",
    ".dynamodb/**",
    "dist/**",
    "**/.DS_Store",
    "**/Thumbs.db",
    ".idea/**",
    ".vscode/**",
    "**/*.swp",
    "**/*.swo",
    "**/*.swn",
    "**/*.bak",
    "build/**",
    "out/**",
    "tmp/**",
    "temp/**",
    "**/repomix-output.*",
    "**/repopack-output.*",
    "**/package-lock.json",
    "**/yarn-error.log",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/bun.lockb",
    "**/bun.lock",
    "**/__pycache__/**",
    "**/*.py[cod]",
    "**/venv/**",
    "**/.venv/**",
    "**/.pytest_cache/**",
    "**/.mypy_cache/**",
    "**/.ipynb_checkpoints/**",
    "**/Pipfile.lock",
    "**/poetry.lock",
    "**/uv.lock",
    "**/Cargo.lock",
    "**/Cargo.toml.orig",
    "**/target/**",
    "**/*.rs.bk",
    "**/composer.lock",
    "**/Gemfile.lock",
    "**/go.sum",
    "**/mix.lock",
    "**/stack.yaml.lock",
    "**/cabal.project.freeze",
];

/// The `binary-extensions` 3.x list that the CLI's `is-binary-path` checks (lower case; its
/// `DS_Store` entry never matches a lower-cased extension, so it is left out).
const BINARY_EXTENSIONS: &[&str] = &[
    "3dm",
    "3ds",
    "3g2",
    "3gp",
    "7z",
    "a",
    "aac",
    "adp",
    "afdesign",
    "afphoto",
    "afpub",
    "ai",
    "aif",
    "aiff",
    "alz",
    "ape",
    "apk",
    "appimage",
    "ar",
    "arj",
    "asf",
    "au",
    "avi",
    "bak",
    "baml",
    "bh",
    "bin",
    "bk",
    "bmp",
    "btif",
    "bz2",
    "bzip2",
    "cab",
    "caf",
    "cgm",
    "class",
    "cmx",
    "cpio",
    "cr2",
    "cr3",
    "cur",
    "dat",
    "dcm",
    "dds",
    "deb",
    "dex",
    "djvu",
    "dll",
    "dmg",
    "dng",
    "doc",
    "docm",
    "docx",
    "dot",
    "dotm",
    "dra",
    "dsk",
    "dts",
    "dtshd",
    "dvb",
    "dwg",
    "dxf",
    "dylib",
    "ecelp4800",
    "ecelp7470",
    "ecelp9600",
    "egg",
    "eol",
    "eot",
    "epub",
    "exe",
    "f4v",
    "fbs",
    "fh",
    "fla",
    "flac",
    "flatpak",
    "fli",
    "flv",
    "fpx",
    "fst",
    "fvt",
    "g3",
    "gh",
    "gif",
    "graffle",
    "gz",
    "gzip",
    "h261",
    "h263",
    "h264",
    "icns",
    "ico",
    "ief",
    "img",
    "ipa",
    "iso",
    "jar",
    "jpeg",
    "jpg",
    "jpgv",
    "jpm",
    "jxr",
    "key",
    "ktx",
    "lha",
    "lib",
    "lvp",
    "lz",
    "lzh",
    "lzma",
    "lzo",
    "m3u",
    "m4a",
    "m4v",
    "mar",
    "mdi",
    "mht",
    "mid",
    "midi",
    "mj2",
    "mka",
    "mkv",
    "mmr",
    "mng",
    "mobi",
    "mov",
    "movie",
    "mp3",
    "mp4",
    "mp4a",
    "mpeg",
    "mpg",
    "mpga",
    "msi",
    "msp",
    "mxu",
    "nef",
    "npx",
    "numbers",
    "nupkg",
    "o",
    "odp",
    "ods",
    "odt",
    "oga",
    "ogg",
    "ogv",
    "otf",
    "ott",
    "p12",
    "pages",
    "pbm",
    "pcx",
    "pdb",
    "pdf",
    "pea",
    "pfx",
    "pgm",
    "pic",
    "png",
    "pnm",
    "pot",
    "potm",
    "potx",
    "ppa",
    "ppam",
    "ppm",
    "pps",
    "ppsm",
    "ppsx",
    "ppt",
    "pptm",
    "pptx",
    "psd",
    "pya",
    "pyc",
    "pyo",
    "pyv",
    "qt",
    "rar",
    "ras",
    "raw",
    "resources",
    "rgb",
    "rip",
    "rlc",
    "rmf",
    "rmvb",
    "rpm",
    "rtf",
    "rz",
    "s3m",
    "s7z",
    "scpt",
    "sgi",
    "shar",
    "snap",
    "sil",
    "sketch",
    "slk",
    "smv",
    "snk",
    "so",
    "sqlite",
    "sqlite3",
    "stl",
    "suo",
    "sub",
    "swf",
    "tar",
    "tbz",
    "tbz2",
    "tga",
    "tgz",
    "thmx",
    "tif",
    "tiff",
    "tlz",
    "ttc",
    "ttf",
    "txz",
    "udf",
    "uvh",
    "uvi",
    "uvm",
    "uvp",
    "uvs",
    "uvu",
    "viv",
    "vob",
    "war",
    "wasm",
    "wav",
    "wax",
    "wbmp",
    "wdp",
    "weba",
    "webm",
    "webp",
    "whl",
    "wim",
    "wm",
    "wma",
    "wmv",
    "wmx",
    "woff",
    "woff2",
    "wrm",
    "wvx",
    "xbm",
    "xif",
    "xla",
    "xlam",
    "xls",
    "xlsb",
    "xlsm",
    "xlsx",
    "xlt",
    "xltm",
    "xltx",
    "xm",
    "xmind",
    "xpi",
    "xpm",
    "xwd",
    "xz",
    "z",
    "zip",
    "zipx",
];

/// How to select files.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Custom ignore patterns (fast-glob syntax, like `--ignore`).
    pub ignore: Vec<String>,
    /// Honour `.gitignore` files and `.git/info/exclude`.
    pub use_gitignore: bool,
    /// Honour `.ignore` files.
    pub use_dot_ignore: bool,
    /// Apply the default ignore list.
    pub use_default_patterns: bool,
    /// Files larger than this many bytes are skipped.
    pub max_file_size: u64,
}

/// Why a listed file is not packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, alephauto_guest::schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// A binary file extension.
    BinaryExtension,
    /// A NUL byte or binary content.
    BinaryContent,
    /// Larger than `maxFileSize`.
    SizeLimit,
    /// Not UTF-8 text.
    EncodingError,
}

/// A listed file (relative `/` path and full path).
#[derive(Debug, Clone)]
pub struct Listed {
    /// Path relative to the root with `/` separators.
    pub rel: String,
    /// Full path.
    pub path: PathBuf,
}

/// Fast-glob-style ignore patterns compiled for matching relative paths.
#[derive(Debug)]
struct GlobIgnores {
    set: GlobSet,
}

impl GlobIgnores {
    fn new(patterns: &[String]) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        for raw in patterns {
            let p = normalize_glob_pattern(raw);
            if p.is_empty() || p.starts_with('!') || p.starts_with("../") || p == ".." {
                continue;
            }
            b.add(glob(&p).map_err(|e| format!("ignore pattern `{raw}`: {e}"))?);
            // picomatch lets `a/**` match `a` itself, except when the last segment before `/**`
            // ends with a `*` (`**/repomix-output.*/**` does not match `repomix-output.xml`).
            if let Some(base) = p.strip_suffix("/**")
                && !base.is_empty()
                && !base.ends_with('*')
            {
                b.add(glob(base).map_err(|e| format!("ignore pattern `{raw}`: {e}"))?);
            }
        }
        Ok(Self { set: b.build().map_err(|e| format!("ignore patterns: {e}"))? })
    }

    fn matches(&self, rel: &str) -> bool {
        self.set.is_match(rel)
    }
}

fn glob(p: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(p).literal_separator(true).backslash_escape(true).build()
}

/// repomix's `normalizeGlobPattern`: `dir/` → `dir`, `**/name` → `**/name/**`.
pub fn normalize_glob_pattern(pattern: &str) -> String {
    let p = pattern.trim();
    if p.ends_with('/') && !p.ends_with("**/") {
        return p[..p.len() - 1].to_string();
    }
    if p.starts_with("**/") && !p.contains("/**") {
        return format!("{p}/**");
    }
    p.to_string()
}

/// Lines of an ignore file as repomix's `parseIgnoreContent` reads them.
fn ignore_file_lines(text: &str) -> Vec<String> {
    text.split('\n').map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

/// Lists the candidate files (after every path-based rule), in the CLI's order.
pub fn list(root: &Path, sel: &Selection, output_rel: Option<&str>) -> Result<Vec<Listed>, String> {
    let mut patterns: Vec<String> = Vec::new();
    if sel.use_default_patterns {
        patterns.extend(DEFAULT_IGNORES.iter().map(|s| s.to_string()));
        // A `.git` file (a worktree's pointer) is ignored itself rather than as a folder.
        if is_git_worktree_ref(&root.join(".git")) {
            patterns.retain(|p| p != ".git/**");
            patterns.push(".git".into());
        }
    }
    if let Some(out) = output_rel {
        patterns.push(out.to_string());
    }
    patterns.extend(sel.ignore.iter().cloned());
    if sel.use_gitignore
        && let Ok(text) = std::fs::read_to_string(root.join(".git/info/exclude"))
    {
        patterns.extend(ignore_file_lines(&text));
    }
    let globs = GlobIgnores::new(&patterns)?;

    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .follow_links(false)
        .hidden(false)
        .parents(false)
        .git_global(false)
        .git_exclude(false)
        .git_ignore(sel.use_gitignore)
        .ignore(sel.use_dot_ignore)
        .require_git(false)
        .add_custom_ignore_filename(".repomixignore");
    let root_buf = root.to_path_buf();
    builder.filter_entry(move |e| {
        if e.depth() == 0 {
            return true;
        }
        let rel = crate::select::relative(&root_buf, e.path());
        !globs.matches(&rel)
    });
    let mut files = Vec::new();
    for entry in builder.build() {
        let entry = entry.map_err(|e| format!("walking {}: {e}", root.display()))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = relative(root, entry.path());
        files.push(Listed { rel, path: entry.into_path() });
    }
    files.sort_by(|a, b| compare_paths(&a.rel, &b.rel));
    Ok(files)
}

fn is_git_worktree_ref(p: &Path) -> bool {
    p.is_file() && std::fs::read(p).map(|b| b.starts_with(b"gitdir:")).unwrap_or(false)
}

/// `path` relative to `root` with `/` separators.
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.join("/")
}

/// The CLI's `isBinaryPath`: the lower-cased extension is in the binary list.
pub fn binary_extension(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    // Node's `path.extname`: a leading dot does not start an extension.
    match name.rfind('.') {
        Some(i) if i > 0 => {
            let ext = name[i + 1..].to_ascii_lowercase();
            BINARY_EXTENSIONS.contains(&ext.as_str())
        }
        _ => false,
    }
}

/// The CLI's `readRawFile` on bytes already read: the text, or why it is skipped.
pub fn decode(bytes: &[u8], max_file_size: u64) -> Result<String, SkipReason> {
    if bytes.len() as u64 > max_file_size {
        return Err(SkipReason::SizeLimit);
    }
    if !has_text_bom(bytes) && memchr_nul(bytes) {
        return Err(SkipReason::BinaryContent);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string());
    }
    if is_binary_file(bytes) {
        return Err(SkipReason::BinaryContent);
    }
    // The CLI then guesses a legacy encoding (jschardet) and keeps the file only when the guess
    // decodes without replacement characters; guesses are unreliable, so other encodings are
    // skipped here.
    Err(SkipReason::EncodingError)
}

fn memchr_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

fn has_text_bom(b: &[u8]) -> bool {
    b.starts_with(&[0xef, 0xbb, 0xbf])
        || b.starts_with(&[0x00, 0x00, 0xfe, 0xff])
        || b.starts_with(&[0xff, 0xfe, 0x00, 0x00])
        || b.starts_with(&[0x84, 0x31, 0x95, 0x33])
        || b.starts_with(&[0xfe, 0xff])
        || b.starts_with(&[0xff, 0xfe])
}

/// `isbinaryfile`'s content test on the first 512 bytes of a buffer that is not valid UTF-8 and
/// holds no NUL: over 10% suspicious bytes (control characters other than text whitespace, and
/// high bytes that do not start a valid UTF-8 sequence) means binary.
fn is_binary_file(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let mut suspicious = 0usize;
    let mut i = 0;
    while i < head.len() {
        let b = head[i];
        if !(7..=14).contains(&b) && !(32..=127).contains(&b) {
            let seq = match b {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 0,
            };
            if seq > 0 && i + seq <= head.len() && std::str::from_utf8(&head[i..i + seq]).is_ok() {
                i += seq;
                continue;
            }
            suspicious += 1;
            if i >= 32 && suspicious * 100 / head.len() > 10 {
                return true;
            }
        }
        i += 1;
    }
    !head.is_empty() && suspicious * 100 / head.len() > 10
}

/// The CLI's `sortPaths`: compare part by part; where they differ, a folder sorts before a file,
/// else the names compare by `localeCompare` (ICU root collation).
pub fn compare_paths(a: &str, b: &str) -> Ordering {
    let pa: Vec<&str> = a.split('/').collect();
    let pb: Vec<&str> = b.split('/').collect();
    for i in 0..pa.len().min(pb.len()) {
        if pa[i] != pb[i] {
            let last_a = i == pa.len() - 1;
            let last_b = i == pb.len() - 1;
            if !last_a && last_b {
                return Ordering::Less;
            }
            if last_a && !last_b {
                return Ordering::Greater;
            }
            return locale_compare(pa[i], pb[i]);
        }
    }
    pa.len().cmp(&pb.len())
}

/// ICU root collation for the characters file names use: punctuation and symbols (in DUCET
/// order) before digits before letters; letters compare case-insensitively first, then lower
/// case before upper case; other characters after letters by code point.
pub fn locale_compare(a: &str, b: &str) -> Ordering {
    let ka: Vec<u32> = a.chars().map(primary).collect();
    let kb: Vec<u32> = b.chars().map(primary).collect();
    ka.cmp(&kb).then_with(|| {
        // Tertiary: at the first case difference, lower case first.
        for (x, y) in a.chars().zip(b.chars()) {
            if x != y {
                return match (x.is_lowercase(), y.is_lowercase()) {
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    _ => x.cmp(&y),
                };
            }
        }
        a.len().cmp(&b.len())
    })
}

/// Primary collation weight.
fn primary(c: char) -> u32 {
    // DUCET order of ASCII punctuation and symbols (variable characters, then symbols).
    const PUNCT: &str = "\t\n\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";
    if let Some(i) = PUNCT.find(c) {
        return 1 + i as u32;
    }
    if c.is_ascii_digit() {
        return 100 + (c as u32 - '0' as u32);
    }
    if c.is_ascii_alphabetic() {
        return 200 + (c.to_ascii_lowercase() as u32 - 'a' as u32);
    }
    if c.is_alphabetic() {
        // Latin letters with diacritics etc.: after ASCII letters, case folded.
        return 1000 + c.to_lowercase().next().map_or(c as u32, |l| l as u32);
    }
    500 + c as u32
}

#[cfg(test)]
#[path = "select/tests.rs"]
mod tests;
