// The component side: binds the SDK to the WIT imports of the `pipeline-worker-js` world
// (../wit) and exports a worker definition as the `worker` interface. Only the component
// entry imports this module (node cannot resolve `alephauto:` or `wasi:` specifiers):
//
//   // guest.js
//   import { exportWorker } from '@alephauto/guest/component';
//   import definition from './worker.js';
//   export const worker = exportWorker(definition);

import * as hostImports from 'alephauto:worker/host@0.1.0';
import * as gitImports from 'alephauto:worker/git@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

import { FsError } from './errors.js';
import { normalize } from './fs.js';
import { describe, initWorker, runJob } from './worker.js';

const disposeSymbol = Symbol.dispose || Symbol.for('dispose');
const CHUNK = 64 * 1024;

/** Releases a WASI resource now (the host caps open descriptors per job). */
function dispose(resource) {
  const f = resource && resource[disposeSymbol];
  if (typeof f === 'function') f.call(resource);
}

const KINDS = { directory: 'dir', 'regular-file': 'file', 'symbolic-link': 'symlink' };
const kindOf = (type) => KINDS[type] ?? 'other';

/** The WASI error code an import threw (ComponentizeJS puts a `result` error on `.payload`). */
function codeOf(err) {
  if (err && typeof err.payload === 'string') return err.payload;
  throw err;
}

/** `wasi:filesystem` as the SDK's file backend; every path resolves inside one preopened grant. */
export class WasiBackend {
  constructor() {
    this.preopens = null;
  }

  /** `[descriptor, relative path]` for an absolute path, or FsError `not-granted`. */
  resolve(path, op) {
    if (this.preopens === null) {
      // Longest first, so a nested grant wins over its parent.
      this.preopens = getDirectories()
        .map(([descriptor, at]) => ({ descriptor, at: normalize(at) }))
        .sort((a, b) => b.at.length - a.at.length);
    }
    for (const { descriptor, at } of this.preopens) {
      if (path === at) return [descriptor, '.'];
      const prefix = at === '/' ? '/' : `${at}/`;
      if (path.startsWith(prefix)) return [descriptor, path.slice(prefix.length)];
    }
    throw new FsError('not-granted', op, path);
  }

  /** Runs `f(descriptor, relative)` and turns a WASI error into an FsError naming the path. */
  at(op, path, f) {
    const [dir, rel] = this.resolve(path, op);
    try {
      return f(dir, rel);
    } catch (err) {
      throw new FsError(codeOf(err), op, path);
    }
  }

  stat(path, follow) {
    return this.at('stat', path, (dir, rel) => {
      const s = dir.statAt({ symlinkFollow: follow }, rel);
      const t = s.dataModificationTimestamp;
      return {
        kind: kindOf(s.type),
        size: Number(s.size),
        mtimeMs: t ? Number(t.seconds) * 1000 + Math.floor(t.nanoseconds / 1e6) : null,
      };
    });
  }

  readDir(path) {
    return this.at('list', path, (dir, rel) => {
      const d = dir.openAt({ symlinkFollow: false }, rel, { directory: true }, { read: true });
      try {
        const stream = d.readDirectory();
        try {
          const out = [];
          for (let e = stream.readDirectoryEntry(); e !== undefined; e = stream.readDirectoryEntry()) {
            out.push({ name: e.name, kind: kindOf(e.type) });
          }
          return out;
        } finally {
          dispose(stream);
        }
      } finally {
        dispose(d);
      }
    });
  }

  readFile(path) {
    return this.at('read', path, (dir, rel) => {
      // Symlinks are followed; the host still refuses a target outside the grant.
      const f = dir.openAt({ symlinkFollow: true }, rel, {}, { read: true });
      try {
        const chunks = [];
        let total = 0;
        for (;;) {
          const [data, eof] = f.read(BigInt(CHUNK), BigInt(total));
          if (data.length > 0) {
            chunks.push(data);
            total += data.length;
          }
          if (eof || data.length === 0) break;
        }
        const out = new Uint8Array(total);
        let at = 0;
        for (const c of chunks) {
          out.set(c, at);
          at += c.length;
        }
        return out;
      } finally {
        dispose(f);
      }
    });
  }

  writeFile(path, bytes) {
    this.at('write', path, (dir, rel) => {
      const f = dir.openAt({ symlinkFollow: false }, rel, { create: true, truncate: true }, { write: true });
      try {
        let done = 0;
        while (done < bytes.length) {
          const n = Number(f.write(bytes.subarray(done, done + CHUNK), BigInt(done)));
          if (n <= 0) throw new FsError('io', 'write', path);
          done += n;
        }
      } finally {
        dispose(f);
      }
    });
  }

  mkdir(path) {
    this.at('mkdir', path, (dir, rel) => dir.createDirectoryAt(rel));
  }

  removeFile(path) {
    this.at('remove', path, (dir, rel) => dir.unlinkFileAt(rel));
  }
}

/** The host as the SDK sees it, over the WIT imports. */
function componentHost() {
  return {
    log: hostImports.log,
    progress: hostImports.progress,
    cancelled: hostImports.cancelled,
    fileExecutable: hostImports.fileExecutable,
    git: gitImports,
    fs: new WasiBackend(),
  };
}

/** The `worker` interface implementation for a definition from `defineWorker`. */
export function exportWorker(def) {
  return {
    describe() {
      return describe(def);
    },
    init(config) {
      const error = initWorker(def, config);
      // A `result<_, string>` export reports its error by throwing the string.
      if (error !== undefined) throw error;
    },
    run(job) {
      const outcome = runJob(def, job, componentHost());
      if (outcome.ok) return outcome.value;
      throw outcome.error.toVariant();
    },
    shutdown() {
      if (def.shutdown) {
        try {
          def.shutdown();
        } catch (err) {
          hostImports.log('warn', `shutdown failed: ${err}`, '{}');
        }
      }
    },
  };
}
