// Native tests of worker logic (`node --test`): a fake host that records logs and progress,
// answers git queries from a table, and serves files from node:fs confined to the job's
// grants the way the sandbox confines them (outside a grant: `not-granted`; a symlink whose
// target leaves the grants: `not-permitted`; writing a read-only grant: `not-permitted`).
//
//   const out = runWorker(worker, { params: { repositoryPath: dir }, grants: [dir] });
//   assert.equal(out.ok, true); assert.equal(out.result.files, 3);

import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';

import { FsError } from './errors.js';
import { Context } from './context.js';
import { normalize, relative } from './fs.js';
import { runJob, describe, initWorker } from './worker.js';

const NODE_CODES = {
  ENOENT: 'no-entry',
  EACCES: 'access',
  EPERM: 'not-permitted',
  ENOTDIR: 'not-directory',
  EISDIR: 'is-directory',
  EEXIST: 'exist',
  ENOTEMPTY: 'not-empty',
  ELOOP: 'loop',
};

function kindOf(st) {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  return 'other';
}

/** node:fs confined to grants `[{ path, writable }]` (paths canonicalised, like the host does). */
export class NodeBackend {
  constructor(grants) {
    this.grants = grants.map((g) => ({ path: normalize(nodeFs.realpathSync(g.path)), writable: Boolean(g.writable) }));
  }

  grantOf(path) {
    let best = null;
    for (const g of this.grants) {
      if (relative(g.path, path) !== null && (best === null || g.path.length > best.path.length)) best = g;
    }
    return best;
  }

  /** Checks `path` against the grants; with `follow`, also where its symlinks lead. */
  confine(op, path, { write = false, follow = false } = {}) {
    const grant = this.grantOf(path);
    if (grant === null) throw new FsError('not-granted', op, path);
    if (write && !grant.writable) throw new FsError('not-permitted', op, path);
    // Symlinks inside the path (and at its end, when followed) must stay inside the grant.
    const parent = nodePath.dirname(path);
    let real;
    try {
      real = follow ? nodeFs.realpathSync(path) : nodePath.join(nodeFs.realpathSync(parent), nodePath.basename(path));
    } catch (err) {
      if (err.code === 'ENOENT' && !follow) return;
      if (err.code === 'ENOENT') {
        this.confine(op, parent, { write });
        return;
      }
      throw new FsError(NODE_CODES[err.code] ?? 'io', op, path);
    }
    if (path !== grant.path && relative(grant.path, real) === null) throw new FsError('not-permitted', op, path);
  }

  wrap(op, path, f) {
    try {
      return f();
    } catch (err) {
      if (err instanceof FsError) throw err;
      throw new FsError(NODE_CODES[err.code] ?? 'io', op, path);
    }
  }

  stat(path, follow) {
    this.confine('stat', path, { follow });
    return this.wrap('stat', path, () => {
      const st = follow ? nodeFs.statSync(path) : nodeFs.lstatSync(path);
      return { kind: kindOf(st), size: st.size, mtimeMs: Math.floor(st.mtimeMs) };
    });
  }

  readDir(path) {
    this.confine('list', path);
    return this.wrap('list', path, () => {
      if (nodeFs.lstatSync(path).isSymbolicLink()) throw new FsError('not-directory', 'list', path);
      return nodeFs.readdirSync(path, { withFileTypes: true }).map((d) => ({
        name: d.name,
        kind: d.isSymbolicLink() ? 'symlink' : d.isDirectory() ? 'dir' : d.isFile() ? 'file' : 'other',
      }));
    });
  }

  readFile(path) {
    this.confine('read', path, { follow: true });
    return this.wrap('read', path, () => new Uint8Array(nodeFs.readFileSync(path)));
  }

  writeFile(path, bytes) {
    this.confine('write', path, { write: true });
    this.wrap('write', path, () => nodeFs.writeFileSync(path, bytes));
  }

  mkdir(path) {
    this.confine('mkdir', path, { write: true });
    this.wrap('mkdir', path, () => nodeFs.mkdirSync(path));
  }

  removeFile(path) {
    this.confine('remove', path, { write: true });
    this.wrap('remove', path, () => nodeFs.unlinkSync(path));
  }
}

/** Git answers from a table `{ currentBranch: (repo) => 'main', log: (repo, since, until) => [...] }`. */
function fakeGit(table = {}) {
  const notConfigured = (name) => () => {
    throw { payload: { tag: 'failed', val: `the test's fake git has no ${name}` } };
  };
  const out = {};
  for (const name of ['currentBranch', 'status', 'log', 'trackedFiles', 'remoteUrl', 'toplevel']) {
    const f = table[name];
    out[name] = f
      ? (...args) => {
          try {
            return f(...args);
          } catch (err) {
            // A test may throw `{ tag: 'timeout', val }` like the host's git-error.
            if (err && typeof err.tag === 'string') throw { payload: err };
            throw err;
          }
        }
      : notConfigured(name);
  }
  return out;
}

/** Normalises grants given as paths or `{ path, writable, param }`. */
function grantsOf(grants, outputDir) {
  const list = grants.map((g) => (typeof g === 'string' ? { path: g, writable: false } : g));
  if (outputDir) list.push({ path: outputDir, writable: true, param: 'output' });
  return list;
}

/**
 * A fake host recording what the worker reports. Options: `grants` (paths or
 * `{ path, writable }`), `outputDir`, `git` (table of fake queries), `cancelAfter` (the n-th
 * `cancelled()` call and later answer true), `executable` (path → bool).
 */
export function fakeHost(opts = {}) {
  const grants = grantsOf(opts.grants ?? [], opts.outputDir);
  let cancelCalls = 0;
  const host = {
    logs: [],
    reports: [],
    log(level, message, fields) {
      host.logs.push({ level, message, fields: JSON.parse(fields) });
    },
    progress(percent, message) {
      host.reports.push({ percent, message });
    },
    cancelled() {
      cancelCalls += 1;
      return opts.cancelAfter !== undefined && cancelCalls >= opts.cancelAfter;
    },
    fileExecutable(path) {
      const v = opts.executable?.[path];
      if (v === undefined) throw { payload: `${path} is not a granted file` };
      return v;
    },
    git: fakeGit(opts.git),
    fs: new NodeBackend(grants),
    grants,
  };
  return host;
}

/** A job record like the host's, for `grants` and `outputDir`. */
function jobFor(params, host, opts) {
  return {
    id: opts.jobId ?? 'test-job-1',
    pipelineId: opts.pipelineId ?? 'test',
    attempt: opts.attempt ?? 1,
    params: typeof params === 'string' ? params : JSON.stringify(params ?? {}),
    outputDir: opts.outputDir ?? '',
    grants: host.grants.map((g) => ({
      param: g.param ?? '/path',
      path: g.path,
      access: g.writable ? 'read-write' : 'read-only',
    })),
  };
}

/** A `Context` over a fake host, for testing functions that take `ctx`. Same options as `fakeHost`. */
export function testContext(opts = {}) {
  const host = fakeHost(opts);
  const ctx = new Context(jobFor({}, host, opts), host);
  return { ctx, host };
}

/**
 * Runs a worker definition the way the component does (parameters parsed against its schema,
 * errors mapped to `job-error`). Returns `{ ok, result, error: { tag, val }, logs, progress, info }`.
 * Options as `fakeHost`, plus `params`, `config` (for `init`), `jobId`, `attempt`.
 */
export function runWorker(def, opts = {}) {
  const info = describe(def);
  const initError = initWorker(def, opts.config === undefined ? '' : JSON.stringify(opts.config));
  if (initError !== undefined) throw new Error(`init failed: ${initError}`);
  const host = fakeHost(opts);
  const outcome = runJob(def, jobFor(opts.params, host, opts), host);
  return {
    ok: outcome.ok,
    result: outcome.ok ? JSON.parse(outcome.value) : undefined,
    error: outcome.ok ? undefined : outcome.error.toVariant(),
    logs: host.logs,
    progress: host.reports,
    info,
  };
}
