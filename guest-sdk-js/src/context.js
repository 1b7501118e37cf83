// `Context`: the running job and what a worker may ask of the host (progress, logs,
// cancellation, files, git). Worker logic takes a context, so native tests hand it one
// built over the fake host of testing.js.

import { JobError } from './errors.js';
import { Files, join } from './fs.js';
import { Git } from './git.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** Structured logging into the job's log (`GET /api/jobs/{id}/logs`). */
export class Log {
  constructor(host) {
    this.host = host;
  }

  /** Logs `message` at `level` with an object of fields. */
  write(level, message, fields = {}) {
    if (!LEVELS.includes(level)) throw new TypeError(`log level must be one of ${LEVELS.join(', ')}`);
    this.host.log(level, String(message), JSON.stringify(fields ?? {}));
  }

  /** Very fine detail. */
  trace(message, fields) { this.write('trace', message, fields); }
  /** Debugging detail. */
  debug(message, fields) { this.write('debug', message, fields); }
  /** Normal operation. */
  info(message, fields) { this.write('info', message, fields); }
  /** Something odd that the job survived. */
  warn(message, fields) { this.write('warn', message, fields); }
  /** Something failed. */
  error(message, fields) { this.write('error', message, fields); }
}

/** The job being run and the host calls available to it. */
export class Context {
  /**
   * @param {object} job the WIT `job` record (`id`, `pipelineId`, `attempt`, `outputDir`, `grants`)
   * @param {object} host `{ log, progress, cancelled, fileExecutable, git, fs }` (component.js or testing.js)
   */
  constructor(job, host) {
    this.job = {
      id: job.id,
      pipelineId: job.pipelineId,
      attempt: job.attempt,
      outputDir: job.outputDir,
      grants: (job.grants ?? []).map((g) => ({ param: g.param, path: g.path, writable: g.access === 'read-write' })),
    };
    this.host = host;
    /** Structured logging: `ctx.log.info('message', { fields })`. */
    this.log = new Log(host);
    /** Files in the granted folders: `ctx.fs.readText(path)`, `ctx.fs.walk(root)`... */
    this.fs = new Files(host.fs);
    /** Read-only git queries on granted repositories. */
    this.git = new Git(host.git);
  }

  /** The job's own read-write folder for reports ('' when the schema declined it). */
  get outputDir() {
    return this.job.outputDir;
  }

  /** A path inside the output folder; throws when the job has none. */
  outputPath(name) {
    if (!this.job.outputDir) throw JobError.failed('this job has no output folder (the schema declared "x-alephauto-output": false)');
    return join(this.job.outputDir, name);
  }

  /** Reports progress (0-100, rounded and clamped) and what is happening now. */
  progress(percent, message = '') {
    const pct = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
    this.host.progress(pct, String(message));
  }

  /** True once the job was cancelled. */
  cancelled() {
    return this.host.cancelled();
  }

  /** Throws the cancellation `JobError` once the job was cancelled, so long loops can stop. */
  checkCancelled() {
    if (this.cancelled()) throw JobError.cancelled();
  }

  /** Whether a granted file has an executable bit (WASI does not expose modes). */
  fileExecutable(path) {
    try {
      return this.host.fileExecutable(path);
    } catch (err) {
      const detail = err && err.payload !== undefined ? err.payload : err instanceof Error ? err.message : err;
      throw new Error(`file-executable ${path}: ${detail}`);
    }
  }
}
