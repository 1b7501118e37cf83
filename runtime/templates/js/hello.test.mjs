// Native tests over the SDK's fake host: `npm test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runWorker } from '@alephauto/guest/testing';
import worker from './worker.js';

test('greets, reports progress and refuses a blank name', () => {
  const out = runWorker(worker, { params: { name: 'Ada', times: 2 } });
  assert.deepEqual(out.result.lines, ['Hello, Ada!', 'Hello, Ada!']);
  assert.deepEqual(out.progress.at(-1), { percent: 100, message: 'greeted 2 of 2' });
  assert.equal(runWorker(worker, {}).result.greeting, 'Hello, world!');
  assert.deepEqual(runWorker(worker, { params: { name: ' ' } }).error, {
    tag: 'invalid-input', val: { field: 'name', message: 'must not be blank' },
  });
});
