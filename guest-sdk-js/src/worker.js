// `defineWorker`: a pipeline worker as a plain object, and `runJob`, the one place that turns
// a job record into a `run(ctx, params)` call and its outcome into the contract's result or
// `job-error` (shared by the component export and the native test harness).

import { JobError, toJobError } from './errors.js';
import { Context } from './context.js';
import { Param } from './params.js';

/**
 * Checks and freezes a worker definition:
 * `{ id, version, name, description, params, gitWorkflow?, init?(config), run(ctx, params), shutdown?() }`.
 * `params` is a `p.object(...)`; `run` returns a JSON-serialisable value (the job's result).
 */
export function defineWorker(def) {
  for (const k of ['id', 'version', 'name', 'description']) {
    if (typeof def[k] !== 'string' || def[k].trim() === '') throw new TypeError(`defineWorker: ${k} must be a non-empty string`);
  }
  if (!(def.params instanceof Param) || def.params.schema.type !== 'object') {
    throw new TypeError('defineWorker: params must be p.object({...})');
  }
  if (typeof def.run !== 'function') throw new TypeError('defineWorker: run(ctx, params) is required');
  const g = def.gitWorkflow;
  if (g !== undefined && (typeof g.branchPrefix !== 'string' || typeof g.commitTitle !== 'string')) {
    throw new TypeError('defineWorker: gitWorkflow needs branchPrefix and commitTitle');
  }
  return Object.freeze({ ...def });
}

/** The WIT `worker-info` record of a worker. */
export function describe(def) {
  return {
    id: def.id,
    version: def.version,
    name: def.name,
    description: def.description,
    paramsSchema: JSON.stringify(def.params.toSchema()),
    gitWorkflow: def.gitWorkflow ? { branchPrefix: def.gitWorkflow.branchPrefix, commitTitle: def.gitWorkflow.commitTitle } : undefined,
  };
}

/** Runs `init` with the pipeline configuration; returns an error message or undefined. */
export function initWorker(def, config) {
  let parsed = null;
  if (config && config.trim() !== '') {
    try {
      parsed = JSON.parse(config);
    } catch (err) {
      return `pipeline configuration is not JSON: ${err.message}`;
    }
  }
  try {
    if (def.init) def.init(parsed);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Runs one job: `{ ok: true, value: <json text> }` or `{ ok: false, error: JobError }`. Every
 * failure is logged once at error level and returned, never thrown (a throw out of an export traps).
 */
export function runJob(def, job, host) {
  const ctx = new Context(job, host);
  try {
    let raw;
    try {
      raw = JSON.parse(job.params);
    } catch (err) {
      throw JobError.invalid('params', `not JSON: ${err.message}`);
    }
    const params = def.params.parse(raw);
    const result = def.run(ctx, params);
    if (result && typeof result.then === 'function') {
      throw JobError.failed('run returned a Promise: imported host calls are synchronous, make run synchronous');
    }
    return { ok: true, value: JSON.stringify(result === undefined ? null : result) };
  } catch (err) {
    const error = toJobError(err);
    const fields = error.kind === 'invalid-input' ? { field: error.field, message: error.detail } : { error: error.detail };
    if (!(err instanceof JobError) && err instanceof Error && err.stack) fields.stack = err.stack;
    ctx.log.error(error.message, fields);
    return { ok: false, error };
  }
}
