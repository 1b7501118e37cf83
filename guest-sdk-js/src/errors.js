// Errors a worker throws, and how each becomes the contract's `job-error` variant.

/** Why a job did not succeed; mirrors the WIT `job-error` variant (`kind` is its tag). */
export class JobError extends Error {
  /**
   * @param {'invalid-input'|'failed'|'retryable'} kind
   * @param {string} message
   * @param {string} [field] the parameter, for `invalid-input` (JSON pointer without the leading slash)
   */
  constructor(kind, message, field) {
    super(field === undefined ? message : `${field}: ${message}`);
    this.name = 'JobError';
    this.kind = kind;
    this.field = field;
    this.detail = message;
  }

  /** A parameter the worker refuses; retrying cannot help. */
  static invalid(field, message) {
    return new JobError('invalid-input', message, field);
  }

  /** A failure that retrying will not fix. */
  static failed(message) {
    return new JobError('failed', message);
  }

  /** A failure that may pass on a later attempt (the host retries with backoff). */
  static retryable(message) {
    return new JobError('retryable', message);
  }

  /** The job stopped because the host cancelled it. */
  static cancelled() {
    return new JobError('failed', 'job cancelled');
  }

  /** The WIT variant value (`{ tag, val }`) ComponentizeJS lowers into `job-error`. */
  toVariant() {
    if (this.kind === 'invalid-input') return { tag: 'invalid-input', val: { field: this.field, message: this.detail } };
    return { tag: this.kind, val: this.detail };
  }
}

/** A file operation failed; `code` is the WASI `error-code` (`no-entry`, `not-permitted`...) or `not-granted`. */
export class FsError extends Error {
  constructor(code, op, path) {
    super(`${op} ${path}: ${describeCode(code)}`);
    this.name = 'FsError';
    this.code = code;
    this.op = op;
    this.path = path;
  }

  /** True when the sandbox refused the access (outside the grants, read-only, symlink escape). */
  get denied() {
    return DENIED.has(this.code);
  }

  /** True when the path does not exist. */
  get notFound() {
    return this.code === 'no-entry';
  }
}

const DENIED = new Set(['not-granted', 'not-permitted', 'access', 'read-only']);

function describeCode(code) {
  switch (code) {
    case 'not-granted': return 'outside the folders this job was granted';
    case 'not-permitted':
    case 'access': return 'access denied by the sandbox';
    case 'read-only': return 'the grant is read-only';
    case 'no-entry': return 'no such file or folder';
    case 'not-directory': return 'not a folder';
    case 'is-directory': return 'is a folder';
    case 'exist': return 'already exists';
    case 'insufficient-memory': return "too many open files (the job's descriptor cap) or out of memory";
    default: return code;
  }
}

/** A git query failed; `kind` is the WIT `git-error` tag (`denied`, `not-a-repository`, `timeout`, `too-large`, `failed`). */
export class GitError extends Error {
  constructor(kind, message) {
    super(`git ${kind}: ${message}`);
    this.name = 'GitError';
    this.kind = kind;
    this.detail = message;
  }
}

/**
 * Any thrown value as a `JobError`: JobError as is, GitError timeout → retryable, other
 * GitError/FsError/Error → failed with its message.
 */
export function toJobError(err) {
  if (err instanceof JobError) return err;
  if (err instanceof GitError) return err.kind === 'timeout' ? JobError.retryable(err.message) : JobError.failed(err.message);
  if (err instanceof FsError) return JobError.failed(err.message);
  if (err instanceof Error) return JobError.failed(`${err.name}: ${err.message}`);
  return JobError.failed(String(err));
}
