import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInput, greet } from './hello.js';

test('greets and refuses a blank name', () => {
  assert.deepEqual(greet({ name: 'Ada', times: 2 }), ['Hello, Ada!', 'Hello, Ada!']);
  assert.throws(() => greet({ name: ' ' }), (e) => e instanceof InvalidInput && e.field === 'name');
});
