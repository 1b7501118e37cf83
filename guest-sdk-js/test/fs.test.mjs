// Files and walking over the confined node backend; the walk is checked against git itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { FsError, normalize, relative } from '../src/index.js';
import { testContext } from '../src/testing.js';

function tree(files) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'guest-sdk-js-')));
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
  }
  return root;
}

const files = (ctx, root, opts) => [...ctx.fs.walk(root, opts)].filter((e) => e.kind === 'file').map((e) => e.relative).sort();

test('paths normalise lexically and relative() stays inside the root', () => {
  assert.equal(normalize('/a//b/./c/../d/'), '/a/b/d');
  assert.equal(normalize('/../x'), '/x');
  assert.throws(() => normalize('rel/path'), (e) => e instanceof FsError && e.code === 'not-granted');
  assert.equal(relative('/a/b', '/a/b/c/d'), 'c/d');
  assert.equal(relative('/a/b', '/a/bc'), null);
  assert.equal(relative('/', '/x'), 'x');
});

test('the walk lists exactly what git lists as not ignored', () => {
  const root = tree({
    '.gitignore': [
      '# comment', '*.log', '!keep.log', 'build/', '/top-only.txt', 'docs/**/*.tmp', '**/cache',
      'a?c.txt', 'x[0-9].md', 'y[!0-9].md', '\\#hash.txt', 'trailing.txt   ', 'deep/**', 'sub/anchored.txt', '',
    ].join('\n'),
    'keep.log': 'k', 'drop.log': 'd', 'top-only.txt': 't', 'nested/top-only.txt': 'n',
    'build/out.js': 'o', 'src/build/gen.js': 'g', 'docs/a.tmp': 'a', 'docs/x/y/b.tmp': 'b', 'docs/readme.md': 'r',
    'src/cache/c.bin': 'c', 'cache': 'file named cache', 'abc.txt': '1', 'abbc.txt': '2', 'x1.md': '3', 'xa.md': '4',
    'y1.md': '5', 'ya.md': '6', '#hash.txt': '7', 'trailing.txt': '8', 'deep/a/b.txt': '9', 'deepfile.txt': '10',
    'sub/anchored.txt': '11', 'other/sub/anchored.txt': '12',
    'src/.gitignore': '*.gen.js\n!important.gen.js\n/local.txt\n',
    'src/a.gen.js': 'a', 'src/important.gen.js': 'i', 'src/local.txt': 'l', 'src/inner/local.txt': 'il', 'src/main.js': 'm',
    'src/inner/.gitignore': '!*.log\n', 'src/inner/kept.log': 'kl',
    '.hidden/h.txt': 'h',
  });
  execFileSync('git', ['init', '-q'], { cwd: root });
  fs.appendFileSync(path.join(root, '.git/info/exclude'), 'excluded-by-info.txt\n');
  fs.writeFileSync(path.join(root, 'excluded-by-info.txt'), 'e');
  const git = execFileSync('git', ['ls-files', '--others', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' })
    .split('\0').filter(Boolean).sort();
  const { ctx } = testContext({ grants: [root] });
  assert.deepEqual(files(ctx, root), git);
  // Sanity: the fixture exercises both sides.
  assert.ok(git.includes('keep.log') && git.includes('src/important.gen.js') && git.includes('src/inner/kept.log'));
  assert.ok(!git.includes('drop.log') && !git.includes('src/build/gen.js') && !git.includes('deep/a/b.txt'));
});

test('walk options: no gitignore, hidden, depth, extra patterns, skipped folders, symlinks not followed', () => {
  const root = tree({ '.gitignore': 'ignored.txt\n', 'ignored.txt': 'i', 'a/b/c.txt': 'c', '.dot/x.txt': 'x', 'node_modules/m.js': 'm', 'z.tmp': 'z' });
  fs.mkdirSync(path.join(root, '.git'));
  fs.writeFileSync(path.join(root, '.git/HEAD'), 'ref');
  const outside = tree({ 'secret.txt': 's' });
  fs.symlinkSync(outside, path.join(root, 'link'));
  const { ctx } = testContext({ grants: [root] });
  assert.deepEqual(files(ctx, root, { gitignore: false }), ['.dot/x.txt', '.gitignore', 'a/b/c.txt', 'ignored.txt', 'node_modules/m.js', 'z.tmp']);
  assert.deepEqual(files(ctx, root, { includeHidden: false, skipDirs: ['node_modules'], ignore: ['*.tmp'] }), ['a/b/c.txt']);
  assert.deepEqual(files(ctx, root, { maxDepth: 1 }), ['.gitignore', 'z.tmp']);
  const all = [...ctx.fs.walk(root)];
  assert.deepEqual(all.find((e) => e.relative === 'link'), { path: `${root}/link`, relative: 'link', depth: 1, kind: 'symlink' });
  assert.ok(!all.some((e) => e.relative.includes('secret') || e.relative.startsWith('.git/')));
  // Siblings come sorted, parents before children.
  assert.deepEqual(all.filter((e) => e.kind === 'dir').map((e) => e.relative), ['.dot', 'a', 'a/b', 'node_modules']);
});

test('reads and writes stay inside the grants', () => {
  const root = tree({ 'in.txt': 'héllo\n', 'data.json': '{"a": [1, 2]}' });
  const out = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'guest-sdk-js-out-')));
  const outside = tree({ 'secret.txt': 'top secret' });
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'escape.txt'));
  const { ctx } = testContext({ grants: [root], outputDir: out });

  assert.equal(ctx.fs.readText(`${root}/in.txt`), 'héllo\n');
  assert.deepEqual(ctx.fs.readJson(`${root}/data.json`), { a: [1, 2] });
  assert.equal(ctx.fs.stat(`${root}/in.txt`).size, 7);
  assert.equal(ctx.fs.exists(`${root}/nope`), false);
  assert.deepEqual(ctx.fs.list(root).map((e) => [e.name, e.kind]), [['data.json', 'file'], ['escape.txt', 'symlink'], ['in.txt', 'file']]);

  const denied = (code) => (e) => e instanceof FsError && e.code === code && e.denied;
  assert.throws(() => ctx.fs.readText(`${outside}/secret.txt`), denied('not-granted'));
  assert.throws(() => ctx.fs.readText(`${root}/../${path.basename(outside)}/secret.txt`), denied('not-granted'));
  assert.throws(() => ctx.fs.readText(`${root}/escape.txt`), denied('not-permitted'));
  assert.throws(() => ctx.fs.write(`${root}/new.txt`, 'x'), denied('not-permitted'), 'the grant is read-only');
  assert.throws(() => ctx.fs.readText(`${root}/missing.txt`), (e) => e instanceof FsError && e.notFound);

  ctx.fs.mkdir(`${out}/a/b`, { recursive: true });
  ctx.fs.write(ctx.outputPath('a/b/report.md'), '# report\n');
  ctx.fs.write(`${out}/bytes.bin`, new Uint8Array([0, 1, 2]));
  assert.equal(fs.readFileSync(path.join(out, 'a/b/report.md'), 'utf8'), '# report\n');
  assert.deepEqual([...ctx.fs.readBytes(`${out}/bytes.bin`)], [0, 1, 2]);
  ctx.fs.removeFile(`${out}/bytes.bin`);
  assert.equal(ctx.fs.exists(`${out}/bytes.bin`), false);
});
