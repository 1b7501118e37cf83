//! `alephauto new-worker`: writes a hello-world pipeline worker in Rust, JavaScript
//! (ComponentizeJS) or Python (componentize-py) that builds and runs as it is: a
//! parameter schema, a progress call, a log call, a typed error and a native test.
//!
//! The templates are embedded in the binary (`runtime/templates/`). Each scaffold uses its
//! language's SDK from the source tree this binary was built from (absolute paths): Rust
//! `guest-sdk/`, JavaScript `guest-sdk-js/` (an npm `file:` dependency that also carries the
//! WIT world), Python `guest-sdk-py/` (on the module path); the Python scaffold gets a copy of
//! the WIT contract for componentize-py.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Language of a scaffolded worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the guest SDK (`cargo build --target wasm32-wasip2`).
    Rust,
    /// JavaScript with ComponentizeJS.
    Js,
    /// Python with componentize-py.
    Python,
}

/// The WIT contract, copied into Python scaffolds.
const WORKER_WIT: &str = include_str!("../../wit/worker.wit");
/// The project's toolchain file; the Rust scaffold pins the same compiler.
const TOOLCHAIN: &str = include_str!("../../rust-toolchain.toml");

/// Absolute path of the guest SDK, fixed when this binary was built.
pub fn guest_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("guest-sdk")
}

/// Absolute path of a sibling SDK folder (`guest-sdk-js`, `guest-sdk-py`), canonical when it exists.
fn sdk_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("rust-toolchain.toml", include_str!("../templates/rust/rust-toolchain.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];
const JS: &[(&str, &str)] = &[
    ("package.json", include_str!("../templates/js/package.json")),
    ("guest.js", include_str!("../templates/js/guest.js")),
    ("worker.js", include_str!("../templates/js/worker.js")),
    ("hello.test.mjs", include_str!("../templates/js/hello.test.mjs")),
    (".gitignore", include_str!("../templates/js/gitignore")),
];
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("hello.py", include_str!("../templates/python/hello.py")),
    ("sdk_path.py", include_str!("../templates/python/sdk_path.py")),
    ("test_hello.py", include_str!("../templates/python/test_hello.py")),
    ("requirements.txt", include_str!("../templates/python/requirements.txt")),
    ("build.sh", include_str!("../templates/python/build.sh")),
    (".gitignore", include_str!("../templates/python/gitignore")),
    ("wit/worker.wit", WORKER_WIT),
];

/// What `new_worker` wrote.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// The worker's folder (absolute).
    pub dir: PathBuf,
    /// Files written, relative to `dir`.
    pub files: Vec<String>,
    /// The component the build produces (absolute).
    pub wasm: PathBuf,
    /// Shell command that builds it, run in `dir`.
    pub build: String,
    /// Shell command that runs its native test, run in `dir`.
    pub test: String,
}

/// Checks a pipeline id: lower-case letters, digits and single hyphens, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "worker name {name:?} must look like `my-worker`: lower-case letters, digits and hyphens, starting with a letter"
        );
    }
    Ok(())
}

fn channel() -> &'static str {
    TOOLCHAIN
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or("stable")
}

/// Writes the worker `name` in `lang` into `dir` (default `./<name>`), which must not hold files.
pub fn new_worker(name: &str, lang: Lang, dir: Option<&Path>) -> Result<Scaffold> {
    check_name(name)?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from(name),
    };
    let dir = if dir.is_absolute() { dir } else { std::env::current_dir().context("current folder")?.join(dir) };
    if dir.exists() && std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    let stem = name.replace('-', "_");
    let wasm_name = format!("{stem}.wasm");
    let sdk = guest_sdk_dir();
    let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
    let (files, wasm, build, test) = match lang {
        Lang::Rust => (
            RUST,
            dir.join("target/wasm32-wasip2/release").join(&wasm_name),
            "cargo build --release --target wasm32-wasip2".to_string(),
            "cargo test".to_string(),
        ),
        Lang::Js => (JS, dir.join(&wasm_name), "npm install && npm run build".to_string(), "npm test".to_string()),
        Lang::Python => (
            PYTHON,
            dir.join(&wasm_name),
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && PATH=.venv/bin:$PATH ./build.sh"
                .to_string(),
            "python3 -m unittest".to_string(),
        ),
    };
    let mut written = Vec::new();
    for (rel, text) in files {
        let text = text
            .replace("{{name}}", name)
            .replace("{{wasm}}", &wasm_name)
            .replace("{{guest_sdk}}", &sdk.display().to_string())
            .replace("{{guest_sdk_js}}", &sdk_dir("guest-sdk-js").display().to_string())
            .replace("{{guest_sdk_py}}", &sdk_dir("guest-sdk-py").display().to_string())
            .replace("{{rust_channel}}", channel());
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push((*rel).to_string());
    }
    #[cfg(unix)]
    if lang == Lang::Python {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("build.sh");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", script.display()))?;
    }
    let scaffold = Scaffold { dir, files: written, wasm, build, test };
    std::fs::write(
        scaffold.dir.join("README.md"),
        format!("# {name}\n\nAn AlephAuto pipeline worker.\n\n{}", next_steps(name, &scaffold)),
    )
    .context("writing README.md")?;
    Ok(scaffold)
}

/// The next steps printed after scaffolding (and written to the worker's README.md).
pub fn next_steps(name: &str, s: &Scaffold) -> String {
    let root = s.dir.parent().unwrap_or(&s.dir).display().to_string();
    format!(
        "## Next steps\n\n\
         1. Build the component (in {dir}):\n\n       {build}\n\n\
         2. Test the worker logic natively:\n\n       {test}\n\n\
         3. Register it in alephauto.toml:\n\n\
         \x20      [pipelines.{name}]\n\
         \x20      component = \"{wasm}\"\n\
         \x20      roots = [\"{root}\"]   # folders path parameters may name\n\
         \x20      timeout_secs = 60\n\
         \x20      memory_mb = 256\n\n\
         4. Restart `alephauto serve` and trigger a job:\n\n\
         \x20      curl -X POST http://127.0.0.1:8080/api/pipelines/{name}/trigger \\\n\
         \x20        -H 'content-type: application/json' -d '{{\"parameters\": {{\"name\": \"Ada\"}}}}'\n\n\
         \x20  or: alephauto trigger {name} -p name=Ada --wait\n\n\
         See docs/authoring-workers.md in the AlephAuto repository for the contract, grants and limits.\n",
        dir = s.dir.display(),
        build = s.build,
        test = s.test,
        wasm = s.wasm.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["hello", "my-worker", "a1-b2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Hello", "1abc", "a_b", "a--b", "a-", "../x", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_language_scaffolds_with_placeholders_filled() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let temp = tempfile::tempdir().unwrap();
            let s = new_worker("hello-there", lang, Some(&temp.path().join("w"))).unwrap();
            for rel in &s.files {
                let text = std::fs::read_to_string(s.dir.join(rel)).unwrap();
                assert!(!text.contains("{{"), "{lang:?} {rel} has an unfilled placeholder");
            }
            assert!(s.wasm.ends_with("hello_there.wasm"));
            assert!(new_worker("hello-there", lang, Some(&s.dir)).is_err(), "refuses a non-empty folder");
        }
        assert_ne!(channel(), "stable");
    }
}
