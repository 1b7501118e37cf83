// Native tests of todo-tracker over real files and a fake host (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { runWorker } from '@alephauto/guest/testing';
import worker from './worker.js';
import { findMarkers, markerRegex } from './scan.js';

function tree(files) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'todo-tracker-')));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

test('markers are whole words, with scope and punctuation dropped', () => {
  const re = markerRegex(['TODO', 'FIXME']);
  const { markers, lines } = findMarkers('a // TODO: one\nTODOS are not\n/* FIXME(ann)! two */\nx = "NOTODO"\n', re);
  assert.equal(lines, 5);
  assert.deepEqual(markers, [{ line: 1, marker: 'TODO', text: 'one' }, { line: 3, marker: 'FIXME', text: 'two' }]);
});

test('a tree is scanned honouring .gitignore, reports land in the output folder', () => {
  const root = tree({
    '.gitignore': 'dist/\n*.min.js\n',
    'src/app.js': '// TODO: wire the API\nconst x = 1; // HACK around a bug\n',
    'src/util.py': '# FIXME handle None\n',
    'dist/bundle.js': '// TODO: generated, ignored\n',
    'src/vendor.min.js': '// TODO ignored too\n',
    'notes/plan.md': 'XXX decide\nTODO: write docs\n',
    'big.txt': `TODO: too big ${'x'.repeat(200)}\n`,
    'image.bin': Buffer.from([0x54, 0x4f, 0x44, 0x4f, 0x00, 0x01]),
  });
  const out = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'todo-out-')));
  const r = runWorker(worker, {
    params: { repositoryPath: root, maxFileBytes: 100 },
    grants: [root],
    outputDir: out,
    git: { toplevel: () => root, currentBranch: () => 'main', trackedFiles: () => ['src/app.js', 'notes/plan.md'] },
  });
  assert.equal(r.ok, true, JSON.stringify(r.error));
  const res = r.result;
  assert.equal(res.total, 5);
  assert.deepEqual(res.counts, { TODO: 2, FIXME: 1, HACK: 1, XXX: 1 });
  assert.deepEqual(res.markers.map((m) => `${m.file}:${m.line}:${m.marker}:${m.tracked}`), [
    'notes/plan.md:1:XXX:true', 'notes/plan.md:2:TODO:true', 'src/app.js:1:TODO:true', 'src/app.js:2:HACK:true', 'src/util.py:1:FIXME:false',
  ]);
  assert.deepEqual(res.skipped, { binary: 1, tooLarge: 1, symlinks: 0 });
  assert.deepEqual(res.git, { branch: 'main', trackedFiles: 2, untrackedWithMarkers: 1 });
  const md = fs.readFileSync(path.join(out, 'todo-report.md'), 'utf8');
  assert.match(md, /## src\/util\.py\n\n- line 1: \*\*FIXME\*\* handle None _\(untracked\)_/);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'todo-report.json'), 'utf8')).total, 5);
  assert.equal(r.progress.at(-1).percent, 100);
});

test('symlinks leaving the grant are refused, not read; other parameters are checked', () => {
  const outside = tree({ 'secret.txt': 'TODO: secret\n' });
  const root = tree({ 'a.txt': 'TODO: a\n' });
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'escape.txt'));
  const git = { toplevel: () => { throw { tag: 'not-a-repository', val: root }; } };
  let r = runWorker(worker, { params: { repositoryPath: root, followSymlinks: true }, grants: [root], git });
  assert.equal(r.result.total, 1);
  assert.deepEqual(r.result.refused.map((x) => [x.file, x.code]), [['escape.txt', 'not-permitted']]);
  assert.equal(r.result.git, null);
  r = runWorker(worker, { params: { repositoryPath: root }, grants: [root], git });
  assert.deepEqual([r.result.total, r.result.skipped.symlinks, r.result.refused.length], [1, 1, 0]);
  r = runWorker(worker, { params: { repositoryPath: `${root}/a.txt` }, grants: [root], git });
  assert.deepEqual(r.error, { tag: 'invalid-input', val: { field: 'repositoryPath', message: `${root}/a.txt is not a folder` } });
  r = runWorker(worker, { params: { repositoryPath: root, markers: ['TO DO'] }, grants: [root], git });
  assert.equal(r.error.val.field, 'markers/0');
});
