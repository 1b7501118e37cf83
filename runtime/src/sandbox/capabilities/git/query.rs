//! The answers to the git queries, computed in-process with gitoxide on a repository
//! `confine` opened. Each answer matches what the git CLI printed for the same question
//! (`rev-parse --abbrev-ref HEAD`, `status --porcelain=v1 --untracked-files=all`,
//! `log --all --numstat --no-renames`, `ls-files`, `config remote.<name>.url`,
//! `rev-parse --show-toplevel`); deviations are noted where they are made.

use std::collections::BTreeMap;
use std::path::Path;

use gix::bstr::{BStr, ByteSlice};
use gix::diff::blob::{Algorithm, Diff, InternedInput};
use gix::status::index_worktree::Item as WorktreeItem;
use gix::status::plumbing::index_as_worktree::{Change, Conflict, EntryStatus};

use crate::sandbox::bindings::git::{Commit, FileChange, GitError};

use super::Ctx;

/// Bytes git looks at to call a blob binary (`FIRST_FEW_BYTES` in git's xdiff-interface.c).
const BINARY_PROBE: usize = 8000;

/// Maps a gitoxide error to the guest's `failed`.
fn failed(what: &str) -> impl FnOnce(gix::Error) -> GitError + '_ {
    move |e| GitError::Failed(format!("{what}: {e}"))
}

/// Lossy UTF-8, as the CLI's output was read.
fn text(b: &BStr) -> String {
    b.to_str_lossy().into_owned()
}

/// The checked-out branch's short name, `HEAD` when detached.
pub(super) fn current_branch(repo: &gix::Repository) -> Result<String, GitError> {
    let name = repo.head_name().map_err(failed("reading HEAD"))?;
    // Unlike `git rev-parse`, a branch without commits yet still answers its name.
    Ok(name.map_or_else(|| "HEAD".to_string(), |n| text(n.shorten())))
}

/// The work tree's top folder.
pub(super) fn toplevel(repo: &gix::Repository) -> Result<String, GitError> {
    let work = repo
        .workdir()
        .ok_or_else(|| GitError::Failed("this operation must be run in a work tree (the repository is bare)".into()))?;
    let top = std::fs::canonicalize(work).map_err(|e| GitError::Failed(format!("{}: {e}", work.display())))?;
    Ok(top.display().to_string())
}

/// `remote.<name>.url` from the repository's own config (none when unset).
pub(super) fn remote_url(repo: &gix::Repository, remote: &str) -> Result<Option<String>, GitError> {
    let config = repo.config_snapshot();
    // The raw file: read, never acted on; reduced trust does not hide plain values.
    Ok(config.plumbing().string_by("remote", Some(remote.into()), "url").map(|u| text(u.as_ref())))
}

/// Paths in the index under `start` (relative to it, as `git -C start ls-files` prints them).
pub(super) fn tracked_files(repo: &gix::Repository, start: &Path, ctx: &Ctx) -> Result<Vec<String>, GitError> {
    let work = repo.workdir().ok_or_else(|| GitError::Failed("the repository is bare; it has no index".into()))?;
    let work = std::fs::canonicalize(work).map_err(|e| GitError::Failed(format!("{}: {e}", work.display())))?;
    let prefix = start.strip_prefix(&work).ok().map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    let index = repo.index_or_empty().map_err(failed("reading the index"))?;
    let mut out = Vec::new();
    let mut size = ctx.output();
    for entry in index.entries() {
        let path = text(entry.path(&index));
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        // An unmerged path has one entry per stage; ls-files lists it once per stage too,
        // but one name is what a caller wants.
        if out.last().is_some_and(|last: &String| last == rel) {
            continue;
        }
        size.add(rel.len())?;
        ctx.check()?;
        out.push(rel.to_string());
    }
    Ok(out)
}

/// `git status --porcelain=v1 --untracked-files=all`: tracked changes sorted by path, then
/// untracked files. Renames are not paired (a rename reads as `D ` plus `A `), and submodules
/// are not entered (their git dir could point anywhere).
pub(super) fn status(repo: &gix::Repository, ctx: &Ctx) -> Result<Vec<(String, String)>, GitError> {
    let iter = repo
        .status(gix::progress::Discard)
        .map_err(failed("preparing the status"))?
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .tree_index_track_renames(gix::status::tree_index::TrackRenames::Disabled)
        .index_worktree_submodules(gix::status::Submodule::Given {
            ignore: gix::submodule::config::Ignore::All,
            check_dirty: false,
        })
        .should_interrupt_owned(ctx.interrupt.clone())
        .into_iter(None)
        .map_err(failed("computing the status"))?;
    // (index vs HEAD, work tree vs index) per path.
    let mut tracked: BTreeMap<String, (char, char)> = BTreeMap::new();
    let mut untracked: Vec<String> = Vec::new();
    let mut size = ctx.output();
    for item in iter {
        ctx.check()?;
        let item = item.map_err(failed("computing the status"))?;
        match item {
            gix::status::Item::TreeIndex(change) => {
                let (path, code) = match &change {
                    gix::diff::index::Change::Addition { location, .. } => (location, 'A'),
                    gix::diff::index::Change::Deletion { location, .. } => (location, 'D'),
                    gix::diff::index::Change::Modification { location, previous_entry_mode, entry_mode, .. } => {
                        let typechange = previous_entry_mode.to_tree_entry_mode().map(|m| m.kind())
                            != entry_mode.to_tree_entry_mode().map(|m| m.kind());
                        (location, if typechange { 'T' } else { 'M' })
                    }
                    gix::diff::index::Change::Rewrite { location, .. } => (location, 'A'),
                };
                tracked.entry(text(path.as_ref())).or_insert((' ', ' ')).0 = code;
            }
            gix::status::Item::IndexWorktree(WorktreeItem::Modification { rela_path, status, .. }) => {
                let slot = tracked.entry(text(rela_path.as_ref())).or_insert((' ', ' '));
                match status {
                    EntryStatus::Conflict { summary, .. } => *slot = conflict_code(summary),
                    EntryStatus::Change(Change::Removed) => slot.1 = 'D',
                    EntryStatus::Change(Change::Type { .. }) => slot.1 = 'T',
                    EntryStatus::Change(Change::Modification { .. } | Change::SubmoduleModification(_)) => slot.1 = 'M',
                    EntryStatus::IntentToAdd => slot.1 = 'A',
                    EntryStatus::NeedsUpdate(_) => {}
                }
            }
            gix::status::Item::IndexWorktree(WorktreeItem::DirectoryContents { entry, .. }) => {
                if entry.status == gix::dir::entry::Status::Untracked {
                    let mut path = text(entry.rela_path.as_ref());
                    // git lists an untracked nested repository (or kept empty folder) as `dir/`.
                    if matches!(
                        entry.disk_kind,
                        Some(gix::dir::entry::Kind::Directory | gix::dir::entry::Kind::Repository)
                    ) {
                        path.push('/');
                    }
                    untracked.push(path);
                }
            }
            gix::status::Item::IndexWorktree(WorktreeItem::Rewrite { dirwalk_entry, .. }) => {
                untracked.push(text(dirwalk_entry.rela_path.as_ref()));
            }
        }
    }
    let mut out = Vec::new();
    for (path, (x, y)) in tracked {
        if (x, y) == (' ', ' ') {
            continue;
        }
        size.add(path.len() + 3)?;
        out.push((format!("{x}{y}"), path));
    }
    untracked.sort();
    for path in untracked {
        size.add(path.len() + 3)?;
        out.push(("??".to_string(), path));
    }
    Ok(out)
}

/// The two-letter porcelain code of an unmerged path.
fn conflict_code(c: Conflict) -> (char, char) {
    match c {
        Conflict::BothDeleted => ('D', 'D'),
        Conflict::AddedByUs => ('A', 'U'),
        Conflict::DeletedByThem => ('U', 'D'),
        Conflict::AddedByThem => ('U', 'A'),
        Conflict::DeletedByUs => ('D', 'U'),
        Conflict::BothAdded => ('A', 'A'),
        Conflict::BothModified => ('U', 'U'),
    }
}

/// Commits reachable from any reference (and HEAD) with author time in [since, until), newest
/// commit time first, each with numstat against its parent (the empty tree for a root commit;
/// none for a merge, as `git log` prints none without `-m`).
pub(super) fn log(repo: &gix::Repository, since: i64, until: i64, ctx: &Ctx) -> Result<Vec<Commit>, GitError> {
    let mut tips = Vec::new();
    let refs = repo.references().map_err(failed("reading references"))?;
    for reference in refs.all().map_err(failed("reading references"))? {
        ctx.check()?;
        let Ok(mut reference) = reference else {
            continue;
        };
        // Refs to trees or blobs are not commits; `git log --all` skips them too.
        if let Ok(commit) = reference.peel_to_commit() {
            tips.push(commit.id);
        }
    }
    if let Ok(head) = repo.head_id() {
        tips.push(head.detach());
    }
    tips.sort();
    tips.dedup();
    use gix::revision::walk::Sorting;
    use gix::traverse::commit::simple::CommitTimeOrder;
    let order = CommitTimeOrder::NewestFirst;
    // Commit time is never before author time in practice, so nothing in the window is
    // cut (the CLI's `--since` did the same).
    let sorting =
        if since > 0 { Sorting::ByCommitTimeCutoff { order, seconds: since } } else { Sorting::ByCommitTime(order) };
    let walk = repo.rev_walk(tips).sorting(sorting).all().map_err(failed("walking the history"))?;
    let mut out = Vec::new();
    let mut size = ctx.output();
    for info in walk {
        ctx.check()?;
        let info = info.map_err(failed("walking the history"))?;
        let commit = info.object().map_err(failed("reading a commit"))?;
        let author = commit.author().map_err(failed("reading a commit's author"))?;
        let timestamp = author.time().map_err(failed("reading a commit's author time"))?.seconds;
        if timestamp < since || timestamp >= until {
            continue;
        }
        let subject = text(commit.message().map_err(failed("reading a commit message"))?.summary().as_ref());
        let files = numstat(repo, &commit, ctx)?;
        size.add(40 + author.name.len() + author.email.len() + subject.len())?;
        for f in &files {
            size.add(f.path.len() + 16)?;
        }
        out.push(Commit {
            sha: info.id.to_string(),
            author_name: text(author.name),
            author_email: text(author.email),
            timestamp,
            subject,
            files,
        });
    }
    Ok(out)
}

/// Lines added and deleted per file by a non-merge commit (none for binary files).
fn numstat(repo: &gix::Repository, commit: &gix::Commit<'_>, ctx: &Ctx) -> Result<Vec<FileChange>, GitError> {
    let parents: Vec<_> = commit.parent_ids().collect();
    if parents.len() > 1 {
        return Ok(Vec::new());
    }
    let tree = commit.tree().map_err(failed("reading a commit's tree"))?;
    let parent_tree = match parents.first() {
        Some(p) => p
            .object()
            .map_err(failed("reading a parent commit"))?
            .peel_to_tree()
            .map_err(failed("reading a parent tree"))?,
        None => repo.empty_tree(),
    };
    let changes = repo
        .diff_tree_to_tree(Some(&parent_tree), Some(&tree), gix::diff::Options::default())
        .map_err(failed("diffing a commit"))?;
    let mut files = Vec::new();
    for change in changes {
        ctx.check()?;
        use gix::object::tree::diff::ChangeDetached as C;
        let (location, old, new) = match change {
            C::Addition { location, entry_mode, id, .. } => (location, None, Some((entry_mode, id))),
            C::Deletion { location, entry_mode, id, .. } => (location, Some((entry_mode, id)), None),
            C::Modification { location, previous_entry_mode, previous_id, entry_mode, id } => {
                (location, Some((previous_entry_mode, previous_id)), Some((entry_mode, id)))
            }
            // Rewrites are not tracked (no rename detection), so none arrive.
            C::Rewrite { location, source_entry_mode, source_id, entry_mode, id, .. } => {
                (location, Some((source_entry_mode, source_id)), Some((entry_mode, id)))
            }
        };
        if old.is_some_and(|(m, _)| m.is_tree()) || new.is_some_and(|(m, _)| m.is_tree()) {
            continue;
        }
        let old = blob(repo, old)?;
        let new = blob(repo, new)?;
        let counts = match (&old, &new) {
            (Some(o), _) if is_binary(o) => None,
            (_, Some(n)) if is_binary(n) => None,
            _ => Some(line_counts(old.as_deref().unwrap_or_default(), new.as_deref().unwrap_or_default())),
        };
        files.push(FileChange {
            path: text(location.as_ref()),
            added: counts.map(|c| c.0),
            deleted: counts.map(|c| c.1),
        });
    }
    Ok(files)
}

/// The bytes a tree entry stands for: blob data, link text, or `Subproject commit <id>` for
/// a submodule (what git diffs for a gitlink).
fn blob(
    repo: &gix::Repository,
    entry: Option<(gix::object::tree::EntryMode, gix::ObjectId)>,
) -> Result<Option<Vec<u8>>, GitError> {
    let Some((mode, id)) = entry else {
        return Ok(None);
    };
    if mode.is_commit() {
        return Ok(Some(format!("Subproject commit {id}\n").into_bytes()));
    }
    let object = repo.find_object(id).map_err(failed("reading a blob"))?;
    Ok(Some(object.detach().data))
}

/// git's rule: a NUL byte among the first 8000 bytes.
fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(BINARY_PROBE)].contains(&0)
}

/// (added, deleted) lines between two texts, with the Myers diff git uses by default.
pub(super) fn line_counts(old: &[u8], new: &[u8]) -> (u32, u32) {
    let input = InternedInput::new(old, new);
    let diff = Diff::compute(Algorithm::Myers, &input);
    (diff.count_additions(), diff.count_removals())
}
