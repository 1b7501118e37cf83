//! Tidying a job's output folder after its attempt: symbolic links a guest planted that
//! point outside the folder are removed (the guest could not follow them, but whoever
//! reads the outputs later might), then the folder is removed if nothing else is left.
//!
//! Nothing here opens or reads through a link: entries are typed without following them,
//! and a link's target is only resolved to decide whether it stays inside.

use std::path::Path;

/// Entries looked at per folder before giving up (a guest may write millions of files).
const MAX_ENTRIES: usize = 100_000;
/// Nesting followed before giving up.
const MAX_DEPTH: usize = 64;

/// Removes outward links under `dir`, then `dir` itself when it is empty.
pub(crate) fn tidy(dir: &Path) {
    // The common case: the worker wrote nothing.
    if std::fs::remove_dir(dir).is_ok() {
        return;
    }
    let Ok(root) = std::fs::canonicalize(dir) else { return };
    let mut budget = MAX_ENTRIES;
    let removed = sweep(&root, &root, 0, &mut budget);
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed symbolic links pointing out of a job's output folder");
    }
    if budget == 0 {
        tracing::warn!(dir = %dir.display(), "output folder too large to check every entry for outward links");
    }
    // Fails, as intended, when the worker left files there.
    let _ = std::fs::remove_dir(dir);
}

/// Walks `folder` (inside `root`), removing links whose target is not inside `root`;
/// returns how many it removed.
fn sweep(root: &Path, folder: &Path, depth: usize, budget: &mut usize) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        // `DirEntry::file_type` does not follow links.
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_symlink() {
            if !stays_inside(root, &path) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!(link = %path.display(), error = %e, "cannot remove an outward link"),
                }
            }
        } else if kind.is_dir() && depth < MAX_DEPTH {
            removed += sweep(root, &path, depth + 1, budget);
        }
    }
    removed
}

/// Whether the link at `link` resolves to something inside `root`; a dangling or looping
/// link does not.
fn stays_inside(root: &Path, link: &Path) -> bool {
    std::fs::canonicalize(link).is_ok_and(|target| target.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn outward_links_go_and_everything_else_stays() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("job-1");
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("report.txt"), "r").unwrap();
        symlink("/etc", dir.join("etc")).unwrap();
        symlink(outside.path().join("secret"), dir.join("sub/secret")).unwrap();
        symlink("../../../..", dir.join("sub/deeper/up")).unwrap();
        symlink("missing", dir.join("dangling")).unwrap();
        symlink("report.txt", dir.join("latest")).unwrap();
        symlink("../report.txt", dir.join("sub/report")).unwrap();
        // A chain whose first hop stays inside but whose end does not.
        symlink("etc", dir.join("via")).unwrap();

        tidy(&dir);

        for gone in ["etc", "sub/secret", "sub/deeper/up", "dangling", "via"] {
            assert!(std::fs::symlink_metadata(dir.join(gone)).is_err(), "{gone} should be gone");
        }
        for kept in ["report.txt", "latest", "sub/report"] {
            assert!(std::fs::symlink_metadata(dir.join(kept)).is_ok(), "{kept} should stay");
        }
        assert_eq!(std::fs::read_to_string(outside.path().join("secret")).unwrap(), "s", "targets are untouched");
    }

    #[test]
    fn an_empty_folder_or_one_with_only_outward_links_is_removed() {
        let data = tempfile::tempdir().unwrap();
        let empty = data.path().join("a");
        std::fs::create_dir(&empty).unwrap();
        tidy(&empty);
        assert!(!empty.exists());
        let linked = data.path().join("b");
        std::fs::create_dir(&linked).unwrap();
        symlink("/etc", linked.join("etc")).unwrap();
        tidy(&linked);
        assert!(std::fs::symlink_metadata(&linked).is_err());
    }
}
