//! Reading jobs' output folders for the API: listing a job's files and opening one.
//!
//! Output folders are written by untrusted guests, so nothing here follows a symbolic link:
//! every folder on the way is opened with `O_NOFOLLOW | O_DIRECTORY` relative to the one above
//! it (`openat`), the file itself with `O_NOFOLLOW`, and entries are typed with `lstat`. A link
//! is neither listed nor served, wherever it points. `std::fs` has no way to refuse links on
//! every component of a path (only the last, through `custom_flags`), hence rustix's `*at` calls.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Files listed per job before the listing says it is truncated (the output quota's file count).
pub const MAX_LISTED: usize = 10_000;
/// Folder nesting walked.
const MAX_DEPTH: usize = 32;
/// Longest relative path accepted.
const MAX_PATH_BYTES: usize = 4096;

/// One file in a job's output folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Path relative to the job's output folder, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type guessed from the extension (`application/octet-stream` when unknown).
    pub media_type: String,
    /// Last modification, RFC 3339.
    pub modified: String,
}

/// A job's files, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The files (links and special files are left out).
    pub files: Vec<Artifact>,
    /// True when the folder held more than [`MAX_LISTED`] files or nested deeper than the walk goes.
    pub truncated: bool,
}

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The path is not a plain relative path (empty, absolute, `..`, `.`, NUL, too long).
    #[error("invalid artifact path: {0}")]
    InvalidPath(&'static str),
    /// Nothing there, or a link, or not a regular file.
    #[error("no such artifact")]
    NotFound,
    /// The file system failed.
    #[error("reading the artifact: {0}")]
    Io(#[from] std::io::Error),
}

/// An opened artifact, ready to stream.
#[derive(Debug)]
pub struct OpenedArtifact {
    /// The open file (opened without following links).
    pub file: File,
    /// Its size when opened.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Last modification.
    pub modified: DateTime<Utc>,
}

/// Where jobs' output folders live: `<root>/<job id>`.
#[derive(Debug, Clone)]
pub struct OutputFolders {
    root: PathBuf,
}

impl OutputFolders {
    /// Output folders under `root` (resolved once, like the queue does).
    pub fn new(root: &Path) -> Self {
        Self { root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()) }
    }

    /// The folder of `job_id` (which callers have validated as a job id).
    pub fn folder(&self, job_id: &str) -> PathBuf {
        self.root.join(job_id)
    }

    /// Lists a job's files; a job without an output folder has none.
    pub fn list(&self, job_id: &str) -> std::io::Result<Listing> {
        let mut listing = Listing::default();
        let dir = match open_dir(rustix::fs::CWD, self.folder(job_id)) {
            Ok(fd) => fd,
            Err(e) if e == rustix::io::Errno::NOENT => return Ok(listing),
            Err(e) => return Err(e.into()),
        };
        walk(&dir, "", 0, &mut listing)?;
        listing.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    /// Opens `relative` inside a job's folder without following any link.
    pub fn open(&self, job_id: &str, relative: &str) -> Result<OpenedArtifact, ArtifactError> {
        let parts = split_relative(relative)?;
        let (name, folders) = parts.split_last().ok_or(ArtifactError::InvalidPath("empty path"))?;
        let mut dir = open_dir(rustix::fs::CWD, self.folder(job_id)).map_err(not_found_or_io)?;
        for folder in folders {
            dir = open_dir(&dir, *folder).map_err(not_found_or_io)?;
        }
        let fd = rustix::fs::openat(&dir, *name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(not_found_or_io)?;
        let stat = rustix::fs::fstat(&fd).map_err(std::io::Error::from)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(ArtifactError::NotFound);
        }
        Ok(OpenedArtifact {
            file: File::from(fd),
            size: stat.st_size as u64,
            media_type: media_type(name),
            modified: timestamp(stat.st_mtime, stat.st_mtime_nsec),
        })
    }
}

/// Splits a request path into plain names, refusing anything that is not one.
fn split_relative(relative: &str) -> Result<Vec<&str>, ArtifactError> {
    if relative.is_empty() {
        return Err(ArtifactError::InvalidPath("empty path"));
    }
    if relative.len() > MAX_PATH_BYTES {
        return Err(ArtifactError::InvalidPath("longer than 4096 bytes"));
    }
    if relative.starts_with('/') {
        return Err(ArtifactError::InvalidPath("absolute path"));
    }
    if relative.contains('\0') {
        return Err(ArtifactError::InvalidPath("NUL byte"));
    }
    let mut parts = Vec::new();
    for part in relative.split('/') {
        match part {
            "" => return Err(ArtifactError::InvalidPath("empty path component")),
            "." | ".." => return Err(ArtifactError::InvalidPath("'.' or '..' component")),
            p if p.contains('\\') => return Err(ArtifactError::InvalidPath("backslash in a component")),
            p => parts.push(p),
        }
    }
    Ok(parts)
}

fn open_dir<Fd: std::os::fd::AsFd, P: rustix::path::Arg>(at: Fd, path: P) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(at, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

/// ENOENT, ENOTDIR and ELOOP (a link where a folder or file was expected) all mean "not here".
fn not_found_or_io(e: rustix::io::Errno) -> ArtifactError {
    use rustix::io::Errno;
    if e == Errno::NOENT || e == Errno::NOTDIR || e == Errno::LOOP || e == Errno::NAMETOOLONG {
        ArtifactError::NotFound
    } else {
        ArtifactError::Io(e.into())
    }
}

fn walk(dir: &OwnedFd, prefix: &str, depth: usize, listing: &mut Listing) -> std::io::Result<()> {
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    for entry in &mut entries {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(name).to_os_string());
    }
    for name in names {
        if listing.files.len() >= MAX_LISTED {
            listing.truncated = true;
            return Ok(());
        }
        let Some(text) = name.to_str() else { continue };
        let stat = match rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            // Removed while listing.
            Err(e) if e == rustix::io::Errno::NOENT => continue,
            Err(e) => return Err(e.into()),
        };
        let path = if prefix.is_empty() { text.to_string() } else { format!("{prefix}/{text}") };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => listing.files.push(Artifact {
                media_type: media_type(text),
                path,
                size: stat.st_size as u64,
                modified: crate::domain::format_ts(&timestamp(stat.st_mtime, stat.st_mtime_nsec)),
            }),
            FileType::Directory if depth + 1 < MAX_DEPTH => match open_dir(dir, name.as_os_str()) {
                Ok(sub) => walk(&sub, &path, depth + 1, listing)?,
                // Replaced by a link since the lstat: not followed, not listed.
                Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR => {}
                Err(e) if e == rustix::io::Errno::NOENT => {}
                Err(e) => return Err(e.into()),
            },
            FileType::Directory => listing.truncated = true,
            // Links, FIFOs, sockets, devices: never listed.
            _ => {}
        }
    }
    Ok(())
}

fn timestamp(secs: i64, nanos: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos.min(999_999_999) as u32).unwrap_or_default()
}

/// The media type a file is served as. Text types carry `charset=utf-8`.
pub fn media_type(name: &str) -> String {
    let guess = mime_guess::from_path(name).first_or_octet_stream();
    let text = guess.type_() == mime_guess::mime::TEXT
        || guess.essence_str() == "application/json"
        || guess.essence_str() == "image/svg+xml";
    if text && guess.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{}; charset=utf-8", guess.essence_str())
    } else {
        guess.essence_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_plain_names_only() {
        assert_eq!(split_relative("a/b.txt").unwrap(), vec!["a", "b.txt"]);
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\..\\b", "a\0b"] {
            assert!(matches!(split_relative(bad), Err(ArtifactError::InvalidPath(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn links_are_neither_listed_nor_opened() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let job = root.path().join("j1");
        std::fs::create_dir_all(job.join("sub")).unwrap();
        std::fs::write(job.join("report.md"), "# hi").unwrap();
        std::fs::write(job.join("sub/data.json"), "{}").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), job.join("leak")).unwrap();
        std::os::unix::fs::symlink(outside.path(), job.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(job.join("report.md"), job.join("inward")).unwrap();

        let folders = OutputFolders::new(root.path());
        let listing = folders.list("j1").unwrap();
        let paths: Vec<_> = listing.files.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["report.md", "sub/data.json"]);
        assert_eq!(listing.files[0].media_type, "text/markdown; charset=utf-8");
        assert!(!listing.truncated);

        for link in ["leak", "dirlink/secret", "inward"] {
            assert!(matches!(folders.open("j1", link), Err(ArtifactError::NotFound)), "{link} served");
        }
        let opened = folders.open("j1", "sub/data.json").unwrap();
        assert_eq!(opened.size, 2);
        assert_eq!(opened.media_type, "application/json; charset=utf-8");
        assert!(folders.list("missing").unwrap().files.is_empty());
    }
}
