// Native unit tests of the changelog logic: `node --test` (run by scripts/build-polyglot.sh --unit-tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInput, buildChangelog, checkCommits, nextVersion, parseCommit, parseVersion } from './changelog.js';

test('conventional headers are parsed, others are not', () => {
  assert.deepEqual(parseCommit('feat(api)!: drop v1'), {
    type: 'feat', scope: 'api', description: 'drop v1', breaking: true, breakingNote: null,
  });
  assert.equal(parseCommit('fix: x', 'BREAKING CHANGE: config moved').breakingNote, 'config moved');
  assert.equal(parseCommit('Merge branch main'), null);
});

test('bumps follow semver, 0.x breaking bumps the minor', () => {
  assert.equal(nextVersion([1, 2, 3], 'major'), '2.0.0');
  assert.equal(nextVersion([0, 2, 3], 'major'), '0.3.0');
  assert.equal(nextVersion([1, 2, 3], 'minor'), '1.3.0');
  assert.equal(nextVersion([1, 2, 3], 'patch'), '1.2.4');
  assert.throws(() => parseVersion('one', 'previousVersion'), (e) => e instanceof InvalidInput && e.field === 'previousVersion');
});

test('a changelog groups commits and computes the version', () => {
  const commits = checkCommits([
    { subject: 'fix(queue): retry on busy', sha: '1234567890' },
    { subject: 'feat: websocket feed' },
    { subject: 'chore: bump deps' },
    { subject: 'wip' },
  ]);
  const r = buildChangelog(commits, { previousVersion: '1.4.2', date: '2024-05-01' });
  assert.equal(r.bump, 'minor');
  assert.equal(r.version, '1.5.0');
  assert.equal(r.skipped, 1);
  assert.deepEqual(r.sections, { Features: 1, 'Bug fixes': 1, Chores: 1 });
  assert.match(r.markdown, /^## 1\.5\.0 \(2024-05-01\)/);
  assert.match(r.markdown, /- \*\*queue:\*\* retry on busy \(1234567\)/);
});

test('an empty subject is refused naming its index', () => {
  assert.throws(() => checkCommits([{ subject: 'feat: a' }, { subject: ' ' }]), (e) => e.field === 'commits/1/subject');
});

test('the worker summarises inline commits and names bad parameters (SDK harness)', async () => {
  const { runWorker } = await import('@alephauto/guest/testing');
  const { default: worker } = await import('./worker.js');
  const ok = runWorker(worker, { params: { commits: [{ subject: 'feat: x' }], previousVersion: '1.0.0' } });
  assert.equal(ok.result.version, '1.1.0');
  assert.deepEqual(runWorker(worker, { params: {} }).error.val.field, 'repositoryPath');
  assert.deepEqual(runWorker(worker, { params: { commits: [{ subject: ' ' }] } }).error.val.field, 'commits/0/subject');
  const notRepo = runWorker(worker, {
    params: { repositoryPath: '/tmp' },
    git: { log: () => { throw { tag: 'not-a-repository', val: '/tmp' }; } },
  });
  assert.deepEqual(notRepo.error, { tag: 'invalid-input', val: { field: 'repositoryPath', message: 'not a git repository: /tmp' } });
});
