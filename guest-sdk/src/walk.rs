//! Tree walking that honours `.gitignore`, never follows symlinks and never enters `.git`.
//!
//! Built on the `ignore` crate's single-threaded `WalkBuilder`, which builds and works on
//! wasm32-wasip2 (it only needs `std::fs`). The global git config is not consulted: the
//! guest cannot see `$HOME`, and results must not depend on the host user.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// What a walked path is (symlinks are reported, never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (not followed).
    Symlink,
    /// Anything else (socket, device...).
    Other,
}

/// One path found by [`Walker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full path (absolute when the root was).
    pub path: PathBuf,
    /// Path relative to the root, with `/` separators (empty for the root).
    pub relative: String,
    /// 0 for the root, 1 for its children...
    pub depth: usize,
    /// File, directory, symlink or other.
    pub kind: EntryKind,
}

/// A path the walk could not read (the walk goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError(pub String);

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

/// Configures a walk; see the module docs for what is always true.
#[derive(Debug, Clone)]
pub struct Walker {
    root: PathBuf,
    gitignore: bool,
    hidden: bool,
    max_depth: Option<usize>,
    patterns: Vec<String>,
    skip_dirs: Vec<String>,
}

impl Walker {
    /// Walks `root`, honouring `.gitignore`/`.ignore`, including dotfiles (but never `.git`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            gitignore: true,
            hidden: true,
            max_depth: None,
            patterns: Vec::new(),
            skip_dirs: Vec::new(),
        }
    }

    /// Whether `.gitignore`, `.ignore` and `.git/info/exclude` are honoured (default true).
    pub fn gitignore(mut self, on: bool) -> Self {
        self.gitignore = on;
        self
    }

    /// Whether dotfiles and dot-folders are yielded (default true; `.git` never is).
    pub fn include_hidden(mut self, on: bool) -> Self {
        self.hidden = on;
        self
    }

    /// Do not descend below this depth (the root is depth 0).
    pub fn max_depth(mut self, depth: Option<usize>) -> Self {
        self.max_depth = depth;
        self
    }

    /// Extra ignore patterns in `.gitignore` syntax, relative to the root.
    pub fn ignore_patterns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.patterns.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Directory names never entered (e.g. `node_modules`), at any depth.
    pub fn skip_dir_names<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.skip_dirs.extend(names.into_iter().map(Into::into));
        self
    }

    /// Starts the walk; a bad extra pattern is an error naming it.
    pub fn walk(self) -> Result<Walk, WalkError> {
        let extra = if self.patterns.is_empty() {
            None
        } else {
            let mut b = GitignoreBuilder::new(&self.root);
            for p in &self.patterns {
                b.add_line(None, p).map_err(|e| WalkError(format!("ignore pattern `{p}`: {e}")))?;
            }
            Some(b.build().map_err(|e| WalkError(format!("ignore patterns: {e}")))?)
        };
        let filter = Filter { extra, skip_dirs: self.skip_dirs };
        let filter = Arc::new(filter);
        let mut builder = ignore::WalkBuilder::new(&self.root);
        builder
            .follow_links(false)
            .hidden(!self.hidden)
            .parents(false)
            .git_global(false)
            .git_ignore(self.gitignore)
            .git_exclude(self.gitignore)
            .ignore(self.gitignore)
            .require_git(false)
            .max_depth(self.max_depth)
            .sort_by_file_name(|a, b| a.cmp(b))
            .filter_entry(move |e| filter.keep(e));
        Ok(Walk { root: self.root, inner: builder.build() })
    }
}

#[derive(Debug)]
struct Filter {
    extra: Option<Gitignore>,
    skip_dirs: Vec<String>,
}

impl Filter {
    fn keep(&self, e: &ignore::DirEntry) -> bool {
        if e.depth() == 0 {
            return true;
        }
        let name = e.file_name().to_string_lossy();
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        if name == ".git" {
            return false;
        }
        if is_dir && self.skip_dirs.iter().any(|s| *s == name) {
            return false;
        }
        match &self.extra {
            Some(gi) => !gi.matched_path_or_any_parents(e.path(), is_dir).is_ignore(),
            None => true,
        }
    }
}

/// Iterator over a walk, in file-name order within each directory.
pub struct Walk {
    root: PathBuf,
    inner: ignore::Walk,
}

impl fmt::Debug for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Walk").field("root", &self.root).finish_non_exhaustive()
    }
}

impl Iterator for Walk {
    type Item = Result<Entry, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(match item {
            Ok(e) => {
                let kind = match e.file_type() {
                    Some(t) if t.is_symlink() => EntryKind::Symlink,
                    Some(t) if t.is_dir() => EntryKind::Dir,
                    Some(t) if t.is_file() => EntryKind::File,
                    _ => EntryKind::Other,
                };
                let relative = relative_slash(&self.root, e.path());
                Ok(Entry { path: e.path().to_path_buf(), relative, depth: e.depth(), kind })
            }
            Err(err) => Err(WalkError(err.to_string())),
        })
    }
}

/// `path` relative to `root` with `/` separators (the path itself when outside `root`).
pub fn relative_slash(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.join("/")
}

/// True when the first 8 KiB hold a NUL byte (git's binary heuristic).
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8192).any(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn files(w: Walker) -> Vec<String> {
        let mut out: Vec<String> = w
            .walk()
            .expect("walk starts")
            .filter_map(Result::ok)
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.relative)
            .collect();
        out.sort();
        out
    }

    #[test]
    fn honours_gitignore_skips_git_and_extra_patterns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join(".git/objects")).expect("mkdir");
        fs::write(root.join(".git/HEAD"), "ref").expect("write");
        fs::write(root.join(".gitignore"), "*.log\nbuild/\n").expect("write");
        fs::create_dir_all(root.join("build")).expect("mkdir");
        fs::write(root.join("build/out.js"), "x").expect("write");
        fs::create_dir_all(root.join("src/deep")).expect("mkdir");
        fs::write(root.join("src/a.rs"), "a").expect("write");
        fs::write(root.join("src/deep/b.rs"), "b").expect("write");
        fs::write(root.join("debug.log"), "l").expect("write");
        fs::write(root.join("notes.tmp"), "t").expect("write");
        fs::create_dir_all(root.join("node_modules/x")).expect("mkdir");
        fs::write(root.join("node_modules/x/i.js"), "i").expect("write");

        let got = files(Walker::new(root).ignore_patterns(["*.tmp"]).skip_dir_names(["node_modules"]));
        assert_eq!(got, vec![".gitignore", "src/a.rs", "src/deep/b.rs"]);

        let all = files(Walker::new(root).gitignore(false));
        assert!(all.contains(&"debug.log".to_owned()) && all.contains(&"build/out.js".to_owned()));
        assert!(!all.iter().any(|p| p.starts_with(".git/")));

        let shallow = files(Walker::new(root).max_depth(Some(1)).include_hidden(false));
        assert_eq!(shallow, vec!["notes.tmp"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_reported_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("secret.txt"), "s").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("symlink");
        let entries: Vec<Entry> = Walker::new(dir.path()).walk().expect("walk").filter_map(Result::ok).collect();
        let link = entries.iter().find(|e| e.relative == "link").expect("link listed");
        assert_eq!(link.kind, EntryKind::Symlink);
        assert!(!entries.iter().any(|e| e.relative.contains("secret")));
    }
}
