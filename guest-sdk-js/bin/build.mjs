#!/usr/bin/env node
// alephauto-guest-build: builds a JavaScript worker into a WASI 0.2 component.
//
//   alephauto-guest-build guest.js -o my_worker.wasm
//
// 1. Bundles the entry and its imports (relative files and packages such as `@alephauto/guest`)
//    into one ES module with rolldown: StarlingMonkey resolves only relative paths, and only
//    inside the folder it is started in. `alephauto:` and `wasi:` imports stay external.
// 2. Componentizes the bundle with ComponentizeJS against this SDK's `pipeline-worker-js` world
//    (../wit: the shared `pipeline-worker` world plus `wasi:filesystem`), without `wasi:http`
//    (the runtime links no wasi-http; sockets are never granted).
// Both tools are resolved from the worker project (its node_modules), where they are pinned.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WORLD = 'pipeline-worker-js';

function usage(message) {
  if (message) console.error(`alephauto-guest-build: ${message}`);
  console.error('usage: alephauto-guest-build ENTRY.js -o OUT.wasm [--keep-bundle FILE]');
  process.exit(2);
}

/** The ES entry of an installed package: `exports["."]` (import/default) or `module`/`main`. */
function entryOf(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  let e = pkg.exports;
  if (e && typeof e === 'object' && !Array.isArray(e) && '.' in e) e = e['.'];
  while (e && typeof e === 'object' && !Array.isArray(e)) e = e.import ?? e.default ?? e.node;
  return join(dir, typeof e === 'string' ? e : pkg.module ?? pkg.main ?? 'index.js');
}

/** Imports a tool installed in the worker project (node_modules of cwd or a parent), else beside the SDK. */
async function tool(name) {
  for (const start of [process.cwd(), SDK]) {
    for (let dir = start; ; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) return import(pathToFileURL(entryOf(candidate)).href);
      if (dirname(dir) === dir) break;
    }
  }
  throw new Error(`${name} is not installed: add it to the worker's devDependencies and run npm install`);
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, 'keep-bundle': { type: 'string' } },
    });
  } catch (err) {
    usage(err.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) usage('give exactly one entry file');
  if (!values.out) usage('-o OUT.wasm is required');
  const entry = resolve(positionals[0]);
  const out = resolve(values.out);

  const { rolldown } = await tool('rolldown');
  const { componentize } = await tool('@bytecodealliance/componentize-js');

  const work = await mkdtemp(join(tmpdir(), 'alephauto-guest-build-'));
  try {
    const bundlePath = values['keep-bundle'] ? resolve(values['keep-bundle']) : join(work, 'bundle.js');
    const bundle = await rolldown({
      input: entry,
      external: [/^alephauto:/, /^wasi:/],
      platform: 'neutral',
      logLevel: 'warn',
    });
    try {
      await bundle.write({ file: bundlePath, format: 'esm', codeSplitting: false });
    } finally {
      await bundle.close();
    }
    const { component } = await componentize({
      sourcePath: bundlePath,
      witPath: join(SDK, 'wit'),
      worldName: WORLD,
      disableFeatures: ['http', 'fetch-event'],
    });
    await writeFile(`${out}.tmp`, component);
    await rename(`${out}.tmp`, out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`alephauto-guest-build: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
