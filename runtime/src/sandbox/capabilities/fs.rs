//! The filesystem capability: a job's preopened folders (its grants), the cap on host
//! descriptors it may hold open, the quota on its output folder, and the one file fact
//! WASI hides (the executable bit), answered without ever touching a path outside the grants.
//!
//! WASI's own `open-at` and `read-directory` are shadowed in the linker by wrappers that
//! count what the job holds and answer an error (not a trap) past the cap; the rest of
//! `wasi:filesystem` is wasmtime-wasi's, confined by cap-std to the preopens.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::ReaddirIterator;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DirectoryEntryStream, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder, WasiView};

use crate::config::PipelineConfig;
use crate::domain::LogStream;
use crate::sandbox::HostState;
use crate::sandbox::grants::{Access, Grant};

/// The WASI interface whose `open-at` is shadowed (the version wasmtime-wasi 48 links;
/// guests importing any 0.2.x version are matched to it).
const FS_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Handles (descriptors, streams, pollables, ...) one job may hold in its resource table:
/// a backstop for host memory; descriptors have their own, lower cap.
pub const MAX_HANDLES: usize = 16 * 1024;

/// Descriptors kept for the server itself (sockets, SQLite, logs) out of the process limit.
const RESERVED_FDS: u64 = 256;

/// Per-job filesystem caps, from the pipeline's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsCaps {
    /// Host descriptors (files, folders, directory listings) the job may hold open at once.
    pub max_open: usize,
    /// Bytes its output folder may hold.
    pub output_bytes: u64,
    /// Files and folders its output folder may hold.
    pub output_files: u64,
}

impl From<&PipelineConfig> for FsCaps {
    /// The caps a pipeline's jobs run under.
    fn from(config: &PipelineConfig) -> Self {
        Self {
            max_open: config.max_open_files,
            output_bytes: config.output_quota_mb.saturating_mul(1 << 20),
            output_files: config.output_quota_files,
        }
    }
}

impl Default for FsCaps {
    fn default() -> Self {
        Self { max_open: 256, output_bytes: 1 << 30, output_files: 10_000 }
    }
}

/// Descriptors all guests together may hold: the process limit minus a reserve for the
/// server, so a flood of opens across jobs can never starve the accept loop or SQLite.
#[derive(Debug)]
pub struct FdBudget {
    used: AtomicUsize,
    limit: usize,
}

impl FdBudget {
    /// A budget of the process's descriptor limit less the server's reserve.
    pub fn from_rlimit() -> Self {
        let soft = nofile_limit().map_or(1024, |(soft, _)| soft);
        let reserve = RESERVED_FDS.max(soft / 4);
        Self::new(soft.saturating_sub(reserve).max(16) as usize)
    }

    /// A budget of `limit` descriptors.
    pub fn new(limit: usize) -> Self {
        Self { used: AtomicUsize::new(0), limit }
    }

    fn take(&self) -> bool {
        if self.used.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn give_back(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// `(soft, hard)` RLIMIT_NOFILE of this process.
fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft descriptor limit to the hard one (a server holding many jobs' files
/// should not stop at the 1024 a login shell hands it). Returns the new soft limit.
/// Hand-written over libc: two syscalls, and no crate in the graph exposes them without
/// extra features.
pub fn raise_nofile_limit() -> Option<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Some(soft);
    }
    let lim = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        Some(hard)
    } else {
        tracing::warn!(soft, hard, error = %io::Error::last_os_error(), "could not raise the descriptor limit");
        Some(soft)
    }
}

/// One job's filesystem state: its grants and what it holds open.
#[derive(Debug)]
pub struct FsState {
    caps: FsCaps,
    budget: Arc<FdBudget>,
    /// Host files the job opened; alive while any descriptor or stream of the guest holds them.
    open: Vec<Weak<std::fs::File>>,
    /// Set once the guest hit a cap, so the journal notes it once.
    noted: bool,
}

impl FsState {
    /// Fresh state for a job with `caps`, drawing on the process-wide `budget`.
    pub fn new(caps: FsCaps, budget: Arc<FdBudget>) -> Self {
        Self { caps, budget, open: Vec::new(), noted: false }
    }

    /// The job's caps.
    pub fn caps(&self) -> FsCaps {
        self.caps
    }

    /// Forgets files the guest has closed (every descriptor and stream on them dropped).
    fn prune(&mut self) {
        let before = self.open.len();
        self.open.retain(|w| w.strong_count() > 0);
        self.budget.give_back(before - self.open.len());
    }

    /// Takes one descriptor slot, or says why not.
    fn reserve(&mut self, listings: usize) -> Result<(), String> {
        self.prune();
        if self.open.len() + listings >= self.caps.max_open {
            return Err(format!(
                "descriptor limit reached: the job holds {} open files and listings (limit {})",
                self.open.len() + listings,
                self.caps.max_open
            ));
        }
        if !self.budget.take() {
            return Err("the server's descriptor budget for guests is exhausted; try again later".into());
        }
        Ok(())
    }
}

impl Drop for FsState {
    fn drop(&mut self) {
        // The store (and the descriptors in its table) goes with this state.
        self.budget.give_back(self.open.len());
    }
}

/// Preopens the job's grants (read-only unless write was granted).
pub fn preopen(wasi: &mut WasiCtxBuilder, grants: &[Grant]) -> Result<()> {
    for grant in grants {
        let perms = match grant.access {
            Access::Read => FsPerms::ReadOnly,
            Access::Write => FsPerms::ReadWrite,
        };
        let path = grant.dir.to_string_lossy();
        wasi.preopened_dir(&grant.dir, path.as_ref(), perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("preopening {}", grant.dir.display()))?;
    }
    Ok(())
}

/// Shadows WASI's `open-at` and `read-directory` with the counted versions. Call after
/// `wasmtime_wasi::p2::add_to_linker_async`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FS_TYPES).map_err(anyhow::Error::from).context("opening wasi:filesystem/types")?;
    types
        .func_wrap_async(
            "[method]descriptor.open-at",
            |mut store,
             (dir, path_flags, path, oflags, flags): (
                Resource<Descriptor>,
                PathFlags,
                String,
                OpenFlags,
                DescriptorFlags,
            )| {
                Box::new(async move {
                    let state = store.data_mut();
                    let listings = live_listings(state);
                    if let Err(why) = state.fs.reserve(listings) {
                        note_once(state, &why);
                        return Ok((Err(ErrorCode::InsufficientMemory),));
                    }
                    let opened =
                        HostDescriptor::open_at(&mut state.filesystem(), dir, path_flags, path, oflags, flags).await;
                    match opened {
                        Ok(fd) => {
                            let file = match WasiView::ctx(state).table.get(&fd) {
                                Ok(Descriptor::File(f)) => Arc::downgrade(&f.file),
                                Ok(Descriptor::Dir(d)) => Arc::downgrade(&d.dir),
                                Err(e) => return Err(wasmtime::Error::from(e)),
                            };
                            state.fs.open.push(file);
                            Ok((Ok(fd),))
                        }
                        Err(e) => {
                            state.fs.budget.give_back(1);
                            Ok((Err(e.downcast()?),))
                        }
                    }
                })
            },
        )
        .map_err(anyhow::Error::from)
        .context("shadowing open-at")?;
    types
        .func_wrap_async("[method]descriptor.read-directory", |mut store, (dir,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let state = store.data_mut();
                // A listing is read whole into host memory: it counts like an open file.
                let listings = live_listings(state);
                state.fs.prune();
                if state.fs.open.len() + listings >= state.fs.caps.max_open {
                    let why = format!("descriptor limit reached: {listings} directory listings open");
                    note_once(state, &why);
                    return Ok((Err(ErrorCode::InsufficientMemory),));
                }
                let listed: Result<Resource<DirectoryEntryStream>, _> =
                    HostDescriptor::read_directory(&mut state.filesystem(), dir).await;
                match listed {
                    Ok(stream) => Ok((Ok(stream),)),
                    Err(e) => Ok((Err(e.downcast()?),)),
                }
            })
        })
        .map_err(anyhow::Error::from)
        .context("shadowing read-directory")?;
    linker.allow_shadowing(false);
    Ok(())
}

fn live_listings(state: &mut HostState) -> usize {
    WasiView::ctx(state).table.iter_mut().filter(|e| e.is::<ReaddirIterator>()).count()
}

fn note_once(state: &mut HostState, why: &str) {
    if !state.fs.noted {
        state.fs.noted = true;
        state.host.journal.push("warn", LogStream::System, why, None);
        tracing::info!(reason = why, "guest refused a descriptor");
    }
}

/// The answer to every path outside the grants, whether or not it exists there.
fn outside(path: &str) -> String {
    format!("{path} is outside the folders granted to this job")
}

/// Whether `path` (absolute, inside one of `grants`) names an executable file. The grant is
/// found lexically and the rest is resolved by cap-std relative to the granted folder, so
/// no host path outside the grants is ever looked at: an outside path gets one answer
/// whether it exists or not.
pub fn file_executable(grants: &[Grant], path: &str) -> Result<bool, String> {
    let Some(normal) = lexical_normal(Path::new(path)) else { return Err(outside(path)) };
    // The deepest grant wins: a nested grant may be the only one covering a path.
    let Some((grant, rel)) = grants
        .iter()
        .filter_map(|g| normal.strip_prefix(&g.dir).ok().map(|rel| (g, rel.to_path_buf())))
        .max_by_key(|(g, _)| g.dir.as_os_str().len())
    else {
        return Err(outside(path));
    };
    let dir = cap_primitives::fs::open_ambient_dir(&grant.dir, cap_primitives::ambient_authority())
        .map_err(|_| format!("{path}: the granted folder is not available"))?;
    let rel = if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel };
    match cap_primitives::fs::stat(&dir, &rel, cap_primitives::fs::FollowSymlinks::Yes) {
        Ok(meta) => Ok(cap_primitives::fs::MetadataExt::mode(&meta) & 0o111 != 0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!("{path}: no such file inside the grants")),
        // A symbolic link out of the grant: the same answer as any outside path.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(outside(path)),
        Err(e) => Err(format!("{path}: {}", e.kind())),
    }
}

/// `path` with `.` removed and `..` applied lexically; none when it is relative or climbs
/// above the root.
fn lexical_normal(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(name) => out.push(name),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What a job's output folder holds, as far as a scan looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes (apparent file sizes, so a sparse file counts at its length).
    pub bytes: u64,
    /// Files, folders and links.
    pub files: u64,
}

/// Measures `dir`, stopping as soon as either cap is passed (so a scan visits at most
/// `caps.output_files + 1` entries). Symbolic links are counted, never followed.
pub fn measure(dir: &Path, caps: FsCaps) -> io::Result<Usage> {
    let mut usage = Usage::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            // Removed while we looked: nothing to count.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            usage.files += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                usage.bytes = usage.bytes.saturating_add(meta.len());
            }
            if usage.files > caps.output_files || usage.bytes > caps.output_bytes {
                return Ok(usage);
            }
        }
    }
    Ok(usage)
}

/// Why a usage is over the caps, if it is.
pub fn over_quota(usage: Usage, caps: FsCaps) -> Option<String> {
    if usage.bytes > caps.output_bytes {
        return Some(format!(
            "the output folder holds more than {} bytes (quota {} MiB)",
            caps.output_bytes,
            caps.output_bytes >> 20
        ));
    }
    if usage.files > caps.output_files {
        return Some(format!("the output folder holds more than {} files (quota)", caps.output_files));
    }
    None
}

/// Watches a job's output folder while it runs. Scans run off the async threads and
/// their spacing grows with their cost (at least `MIN_INTERVAL`, at least 20× the last
/// scan), so the monitor spends at most ~5 % of a core on a huge folder. What a guest
/// can write between two scans is the overshoot: the interval times its write rate.
#[derive(Debug)]
pub struct QuotaMonitor {
    dir: PathBuf,
    caps: FsCaps,
    next: Instant,
}

/// Shortest time between two scans of an output folder.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl QuotaMonitor {
    /// A monitor of `dir` whose first scan is `MIN_INTERVAL` away (short jobs pay nothing).
    pub fn new(dir: PathBuf, caps: FsCaps) -> Self {
        Self { dir, caps, next: Instant::now() + MIN_INTERVAL }
    }

    /// When the next scan is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Scans now; `Some(reason)` when the folder is over quota.
    pub async fn check(&mut self) -> Option<String> {
        let (dir, caps) = (self.dir.clone(), self.caps);
        let started = Instant::now();
        let usage = tokio::task::spawn_blocking(move || measure(&dir, caps)).await;
        let took = started.elapsed();
        self.next = Instant::now() + MIN_INTERVAL.max(took * 20);
        match usage {
            Ok(Ok(usage)) => over_quota(usage, self.caps),
            Ok(Err(e)) => {
                tracing::debug!(dir = %self.dir.display(), error = %e, "scanning an output folder failed");
                None
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn grant(dir: &Path) -> Grant {
        Grant { param: "dir".into(), dir: dir.to_path_buf(), access: Access::Read }
    }

    #[test]
    fn outside_paths_get_one_answer_whether_they_exist_or_not() {
        let granted = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(granted.path()).unwrap();
        let grants = [grant(&dir)];
        let exists = outside("/etc/passwd");
        assert_eq!(file_executable(&grants, "/etc/passwd").unwrap_err(), exists);
        assert_eq!(file_executable(&grants, "/etc/no-such-file-here").unwrap_err(), outside("/etc/no-such-file-here"));
        let climb = format!("{}/../../etc/passwd", dir.display());
        assert_eq!(file_executable(&grants, &climb).unwrap_err(), outside(&climb));
        assert_eq!(file_executable(&grants, "relative").unwrap_err(), outside("relative"));

        // A link out of the grant answers like any outside path, existing target or not.
        std::os::unix::fs::symlink("/etc/passwd", dir.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/no-such-file-here", dir.join("out2")).unwrap();
        let a = file_executable(&grants, &format!("{}/out", dir.display())).unwrap_err();
        let b = file_executable(&grants, &format!("{}/out2", dir.display())).unwrap_err();
        assert!(a.ends_with("is outside the folders granted to this job"), "{a}");
        assert!(b.ends_with("is outside the folders granted to this job"), "{b}");

        std::fs::write(dir.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("data"), "x").unwrap();
        assert_eq!(file_executable(&grants, &format!("{}/tool", dir.display())), Ok(true));
        assert_eq!(file_executable(&grants, &format!("{}/./data", dir.display())), Ok(false));
        assert!(file_executable(&grants, &format!("{}/missing", dir.display())).unwrap_err().contains("no such file"));
    }

    #[test]
    fn a_scan_stops_at_the_first_cap_passed() {
        let out = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(out.path().join(format!("f{i}")), [0u8; 10]).unwrap();
        }
        let caps = FsCaps { max_open: 1, output_bytes: 1 << 20, output_files: 20 };
        let usage = measure(out.path(), caps).unwrap();
        assert_eq!(usage.files, 21, "stopped one past the cap");
        assert!(over_quota(usage, caps).unwrap().contains("20 files"));
        let caps = FsCaps { output_bytes: 100, output_files: 1000, ..caps };
        assert!(over_quota(measure(out.path(), caps).unwrap(), caps).unwrap().contains("bytes"));
        let roomy = FsCaps { output_bytes: 1 << 20, output_files: 1000, ..caps };
        assert_eq!(measure(out.path(), roomy).unwrap(), Usage { bytes: 500, files: 50 });
    }

    #[test]
    fn the_budget_refuses_past_its_limit_and_takes_back() {
        let b = FdBudget::new(2);
        assert!(b.take() && b.take());
        assert!(!b.take());
        b.give_back(1);
        assert!(b.take());
    }
}
