// Files: read, write, list and walk the folders a job was granted.
//
// In a component the backend is `wasi:filesystem` (component.js): the host preopened every
// granted folder at its own absolute path, so a path parameter is used as given. In native
// tests it is node:fs confined to the same grants (testing.js). Everything above the backend
// (text decoding, walking, `.gitignore`) is shared, so a test exercises the code the component runs.
//
// Backend contract (synchronous; errors are FsError with a WASI error code):
//   stat(path, follow) -> { kind, size, mtimeMs }      kind: 'file' | 'dir' | 'symlink' | 'other'
//   readDir(path) -> [{ name, kind }]                   (any order)
//   readFile(path) -> Uint8Array
//   writeFile(path, bytes)                               (create or truncate)
//   mkdir(path)                                          (one level)
//   removeFile(path)

import { FsError } from './errors.js';
import { IgnoreStack } from './gitignore.js';

/** Lexically normalises an absolute `/` path (`.`, `..`, repeated slashes); throws for a relative one. */
export function normalize(path) {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new FsError('not-granted', 'resolve', String(path));
  const parts = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}

/** Joins path segments with `/` and normalises. */
export function join(...parts) {
  return normalize(parts.join('/'));
}

/** The parent folder of an absolute path. */
export function dirname(path) {
  const p = normalize(path);
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

/** The last segment of a path. */
export function basename(path) {
  const p = normalize(path);
  return p.slice(p.lastIndexOf('/') + 1);
}

/** `path` relative to `root` with `/` separators ('' for the root itself); null when outside it. */
export function relative(root, path) {
  const r = normalize(root);
  const p = normalize(path);
  if (p === r) return '';
  const prefix = r === '/' ? '/' : `${r}/`;
  return p.startsWith(prefix) ? p.slice(prefix.length) : null;
}

/** True when the first 8 KiB hold a NUL byte (git's binary heuristic). */
export function looksBinary(bytes) {
  const n = Math.min(bytes.length, 8192);
  for (let i = 0; i < n; i += 1) if (bytes[i] === 0) return true;
  return false;
}

const decoder = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/** File access for one job (`ctx.fs`). Paths are absolute, as the job's parameters give them. */
export class Files {
  constructor(backend) {
    this.backend = backend;
  }

  /** The file's bytes. */
  readBytes(path) {
    return this.backend.readFile(normalize(path));
  }

  /** The file as UTF-8 text (invalid sequences become U+FFFD). */
  readText(path) {
    return decoder.decode(this.readBytes(path));
  }

  /** The file parsed as JSON; bad JSON throws a `SyntaxError` naming the file. */
  readJson(path) {
    const text = this.readText(path);
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new SyntaxError(`${path}: ${err.message}`);
    }
  }

  /** Writes bytes or text (UTF-8), creating or truncating the file. */
  write(path, data) {
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    this.backend.writeFile(normalize(path), bytes);
  }

  /** Creates a folder; with `recursive`, its missing parents too (an existing folder is fine). */
  mkdir(path, { recursive = false } = {}) {
    const p = normalize(path);
    if (!recursive) return this.backend.mkdir(p);
    if (this.isDir(p)) return undefined;
    if (p !== '/') this.mkdir(dirname(p), { recursive: true });
    try {
      this.backend.mkdir(p);
    } catch (err) {
      // Created meanwhile is fine; an existing file is not.
      if (!(err instanceof FsError && err.code === 'exist' && this.isDir(p))) throw err;
    }
    return undefined;
  }

  /** Removes a file. */
  removeFile(path) {
    this.backend.removeFile(normalize(path));
  }

  /** `{ kind, size, mtimeMs }`; symlinks are not followed unless `follow`. */
  stat(path, { follow = false } = {}) {
    return this.backend.stat(normalize(path), follow);
  }

  /** True when the path exists (a dangling symlink exists). */
  exists(path) {
    try {
      this.stat(path);
      return true;
    } catch (err) {
      if (err instanceof FsError && err.code === 'no-entry') return false;
      throw err;
    }
  }

  /** True when the path is a folder (symlinks not followed). */
  isDir(path) {
    try {
      return this.stat(path).kind === 'dir';
    } catch (err) {
      if (err instanceof FsError && (err.code === 'no-entry' || err.code === 'not-directory')) return false;
      throw err;
    }
  }

  /** The folder's entries `{ name, path, kind }`, sorted by name. */
  list(path) {
    const dir = normalize(path);
    return this.backend
      .readDir(dir)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((e) => ({ name: e.name, path: dir === '/' ? `/${e.name}` : `${dir}/${e.name}`, kind: e.kind }));
  }

  /**
   * Walks `root` depth first, siblings sorted by name, yielding `{ path, relative, depth, kind }`
   * for everything below it (not the root). Never follows symlinks (they are yielded with kind
   * `symlink`), never enters `.git`. A folder that cannot be read is yielded with kind `error`
   * and an `error` (FsError) and the walk goes on.
   *
   * Options: `gitignore` (default true: honour `.gitignore`, `.ignore` and `.git/info/exclude`),
   * `includeHidden` (default true), `maxDepth` (children of the root are depth 1),
   * `ignore` (extra patterns in `.gitignore` syntax, relative to the root), `skipDirs` (folder names never entered).
   */
  *walk(root, opts = {}) {
    const { gitignore = true, includeHidden = true, maxDepth = Infinity, ignore = [], skipDirs = [] } = opts;
    const top = normalize(root);
    const stack = new IgnoreStack();
    const extra = new IgnoreStack();
    if (ignore.length > 0) extra.add('', ignore.join('\n'));
    const skip = new Set(skipDirs);
    const self = this;

    function loadIgnores(dir, rel) {
      if (!gitignore) return;
      const files = rel === '' ? ['.git/info/exclude', '.gitignore', '.ignore'] : ['.gitignore', '.ignore'];
      for (const name of files) {
        let text;
        try {
          text = self.readText(`${dir}/${name}`);
        } catch (err) {
          if (err instanceof FsError) continue; // absent or unreadable: no rules from it
          throw err;
        }
        stack.add(rel, text);
      }
    }

    function* visit(dir, rel, depth) {
      let entries;
      try {
        entries = self.list(dir);
      } catch (err) {
        if (!(err instanceof FsError)) throw err;
        yield { path: dir, relative: rel, depth: depth - 1, kind: 'error', error: err };
        return;
      }
      const mark = stack.layers.length;
      loadIgnores(dir, rel);
      for (const e of entries) {
        if (e.name === '.git') continue;
        if (!includeHidden && e.name.startsWith('.')) continue;
        const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
        const isDir = e.kind === 'dir';
        if (isDir && skip.has(e.name)) continue;
        if (extra.ignored(childRel, isDir) || stack.ignored(childRel, isDir)) continue;
        yield { path: e.path, relative: childRel, depth, kind: e.kind };
        if (isDir && depth < maxDepth) yield* visit(e.path, childRel, depth + 1);
      }
      stack.layers.length = mark;
    }

    yield* visit(top, '', 1);
  }
}
