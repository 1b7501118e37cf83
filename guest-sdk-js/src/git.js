// Read-only git queries on granted repositories (`ctx.git`), over the host's `git` import,
// with plain JS values: numbers for times and counts, null for "none".

import { GitError } from './errors.js';

const seconds = (t) => BigInt(Math.floor(t instanceof Date ? t.getTime() / 1000 : Number(t)));
const count = (n) => (n === undefined || n === null ? null : Number(n));

/** Typed wrapper over the WIT `git` interface; each method throws `GitError` on failure. */
export class Git {
  /** @param {object} imports the `alephauto:worker/git` functions (or a fake with the same shape) */
  constructor(imports) {
    this.imports = imports;
  }

  call(name, ...args) {
    try {
      return this.imports[name](...args);
    } catch (err) {
      // An imported function returning `result` throws its error value on `.payload`.
      const e = err && err.payload !== undefined ? err.payload : err;
      if (e && typeof e.tag === 'string') throw new GitError(e.tag, String(e.val));
      throw err;
    }
  }

  /** Name of the checked-out branch (`HEAD` when detached). */
  currentBranch(repo) {
    return this.call('currentBranch', repo);
  }

  /** Work-tree status: `[{ code, path }]` (`code` is the two-letter porcelain code). */
  status(repo) {
    return this.call('status', repo).map((s) => ({ code: s.code, path: s.path }));
  }

  /**
   * Commits over all branches with author time in [since, until) (Unix seconds or Dates), newest first:
   * `[{ sha, authorName, authorEmail, timestamp, subject, files: [{ path, added, deleted }] }]`
   * (`added`/`deleted` are null for binary files).
   */
  log(repo, since, until) {
    return this.call('log', repo, seconds(since), seconds(until)).map((c) => ({
      sha: c.sha,
      authorName: c.authorName,
      authorEmail: c.authorEmail,
      timestamp: Number(c.timestamp),
      subject: c.subject,
      files: c.files.map((f) => ({ path: f.path, added: count(f.added), deleted: count(f.deleted) })),
    }));
  }

  /** Paths tracked in the index, relative to the repository root. */
  trackedFiles(repo) {
    return this.call('trackedFiles', repo);
  }

  /** URL of a remote (default `origin`), null when it is not set. */
  remoteUrl(repo, remote = 'origin') {
    return this.call('remoteUrl', repo, remote) ?? null;
  }

  /** Top of the work tree that contains `path`. */
  toplevel(path) {
    return this.call('toplevel', path);
  }
}
