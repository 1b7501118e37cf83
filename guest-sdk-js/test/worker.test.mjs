// Parameters, the worker adapter and error mapping, run through the native harness.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { defineWorker, p, JobError, GitError } from '../src/index.js';
import { runWorker } from '../src/testing.js';

const Params = p.object({
  target: p.string({ path: 'write', description: 'Where.' }),
  dryRun: p.boolean({ default: true }),
  level: p.integer({ minimum: 1, maximum: 5, default: 3 }),
  names: p.array(p.string({ minLength: 1 }), { default: [] }),
  repos: p.optional(p.array(p.object({ path: p.string({ path: 'read' }), branch: p.optional(p.string()) }))),
  mode: p.optional(p.string({ enum: ['fast', 'slow'] })),
});

test('the schema is closed, annotated and has its defaults', () => {
  const s = Params.toSchema();
  assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(s.additionalProperties, false);
  assert.deepEqual(s.required, ['target']);
  assert.equal(s.properties.target['x-alephauto-path'], 'write');
  assert.equal(s.properties.dryRun.default, true);
  assert.equal(s.properties.repos.items.properties.path['x-alephauto-path'], 'read');
  assert.equal(s.properties.repos.items.additionalProperties, false);
  assert.deepEqual(s.properties.repos.items.required, ['path']);
  assert.deepEqual(s.properties.mode.enum, ['fast', 'slow']);
  assert.throws(() => p.string({ path: 'exec' }), TypeError);
});

test('parsing applies defaults and names the offending field', () => {
  assert.deepEqual(Params.parse({ target: '/t' }), { target: '/t', dryRun: true, level: 3, names: [] });
  const field = (value) => {
    try {
      Params.parse(value);
    } catch (err) {
      assert.ok(err instanceof JobError && err.kind === 'invalid-input', String(err));
      return err.field;
    }
    return null;
  };
  assert.equal(field({}), 'target');
  assert.equal(field({ target: '/t', bogus: 1 }), 'bogus');
  assert.equal(field({ target: '/t', dryRun: 'no' }), 'dryRun');
  assert.equal(field({ target: '/t', level: 9 }), 'level');
  assert.equal(field({ target: '/t', level: 1.5 }), 'level');
  assert.equal(field({ target: '/t', names: ['a', ''] }), 'names/1');
  assert.equal(field({ target: '/t', repos: [{ path: '/a' }, { path: 3 }] }), 'repos/1/path');
  assert.equal(field({ target: '/t', repos: [{ path: '/a', extra: 1 }] }), 'repos/0/extra');
  assert.equal(field({ target: '/t', mode: 'medium' }), 'mode');
  assert.equal(field([]), 'params');
});

function worker(run, extra = {}) {
  return defineWorker({ id: 'w', version: '1.0.0', name: 'W', description: 'A test worker.', params: Params, run, ...extra });
}

test('results, progress and logs come back; describe carries the schema', () => {
  const w = worker((ctx, params) => {
    ctx.progress(140, 'clamped');
    ctx.progress(49.6, 'rounded');
    ctx.log.info('hello', { target: params.target });
    return { target: params.target, attempt: ctx.job.attempt, grants: ctx.job.grants.length };
  }, { gitWorkflow: { branchPrefix: 'docs', commitTitle: 'docs: update' } });
  const out = runWorker(w, { params: { target: '/tmp' }, grants: ['/tmp'], attempt: 2 });
  assert.equal(out.ok, true);
  assert.deepEqual(out.result, { target: '/tmp', attempt: 2, grants: 1 });
  assert.deepEqual(out.progress, [{ percent: 100, message: 'clamped' }, { percent: 50, message: 'rounded' }]);
  assert.deepEqual(out.logs, [{ level: 'info', message: 'hello', fields: { target: '/tmp' } }]);
  assert.equal(JSON.parse(out.info.paramsSchema).properties.target['x-alephauto-path'], 'write');
  assert.deepEqual(out.info.gitWorkflow, { branchPrefix: 'docs', commitTitle: 'docs: update' });
});

test('errors map onto the contract, and each is logged once', () => {
  const cases = [
    [() => { throw JobError.invalid('target', 'not a folder'); }, { tag: 'invalid-input', val: { field: 'target', message: 'not a folder' } }],
    [() => { throw JobError.retryable('busy'); }, { tag: 'retryable', val: 'busy' }],
    [() => { throw new TypeError('boom'); }, { tag: 'failed', val: 'TypeError: boom' }],
    [() => { throw 'a string'; }, { tag: 'failed', val: 'a string' }],
    [() => Promise.resolve(1), { tag: 'failed', val: 'run returned a Promise: imported host calls are synchronous, make run synchronous' }],
    [(ctx) => ctx.git.log('/tmp', 0, new Date()), { tag: 'retryable', val: 'git timeout: git took too long' }],
    [(ctx) => ctx.git.currentBranch('/tmp'), { tag: 'failed', val: "git failed: the test's fake git has no currentBranch" }],
  ];
  for (const [run, expected] of cases) {
    const out = runWorker(worker(run), {
      params: { target: '/tmp' },
      git: { log: () => { throw { tag: 'timeout', val: 'git took too long' }; } },
    });
    assert.deepEqual(out.error, expected);
    assert.equal(out.logs.filter((l) => l.level === 'error').length, 1);
  }
  // Schema violations are caught before run.
  const out = runWorker(worker(() => assert.fail('run must not be called')), { params: { target: '/tmp', level: 0 } });
  assert.deepEqual(out.error, { tag: 'invalid-input', val: { field: 'level', message: 'must be at least 1' } });
});

test('git answers are plain values and failures are GitErrors', () => {
  const w = worker((ctx) => {
    const commits = ctx.git.log('/r', 0, 10);
    let denied;
    try {
      ctx.git.status('/elsewhere');
    } catch (err) {
      denied = err instanceof GitError ? err.kind : 'other';
    }
    return { commits, remote: ctx.git.remoteUrl('/r'), denied };
  });
  const out = runWorker(w, {
    params: { target: '/tmp' },
    git: {
      log: (repo, since, until) => {
        assert.equal(typeof since, 'bigint');
        assert.equal(until, 10n);
        return [{ sha: 'abc', authorName: 'A', authorEmail: 'a@x', timestamp: 5n, subject: 's', files: [{ path: 'f', added: 1, deleted: undefined }] }];
      },
      remoteUrl: () => undefined,
      status: () => { throw { tag: 'denied', val: '/elsewhere is not granted' }; },
    },
  });
  assert.deepEqual(out.result, {
    commits: [{ sha: 'abc', authorName: 'A', authorEmail: 'a@x', timestamp: 5, subject: 's', files: [{ path: 'f', added: 1, deleted: null }] }],
    remote: null,
    denied: 'denied',
  });
});

test('a cancelled job stops at the next check', () => {
  let done = 0;
  const w = worker((ctx) => {
    for (let i = 0; i < 10; i += 1) {
      ctx.checkCancelled();
      done += 1;
    }
    return done;
  });
  const out = runWorker(w, { params: { target: '/tmp' }, cancelAfter: 4 });
  assert.deepEqual(out.error, { tag: 'failed', val: 'job cancelled' });
  assert.equal(done, 3);
});

test('init sees the configuration as JSON and can refuse it', () => {
  const w = worker(() => 1, { init(config) { if (config && config.bad) throw new Error('bad setting'); } });
  assert.throws(() => runWorker(w, { params: { target: '/t' }, config: { bad: true } }), /init failed: bad setting/);
  assert.equal(runWorker(w, { params: { target: '/t' }, config: { bad: false } }).result, 1);
  assert.throws(() => defineWorker({ id: 'x', version: '1', name: 'n', description: 'd', params: p.string(), run() {} }), TypeError);
});
