// @alephauto/guest: write AlephAuto pipeline workers in JavaScript.
//
//   import { defineWorker, p, JobError } from '@alephauto/guest';
//   export default defineWorker({ id, version, name, description, params: p.object({...}), run(ctx, params) {...} });
//
// The component entry (guest.js) exports it with `exportWorker` from '@alephauto/guest/component';
// native tests run it with `runWorker` from '@alephauto/guest/testing'.

export * as p from './params.js';
export { Param } from './params.js';
export { JobError, FsError, GitError, toJobError } from './errors.js';
export { Context, Log } from './context.js';
export { Files, normalize, join, dirname, basename, relative, looksBinary } from './fs.js';
export { IgnoreFile, IgnoreStack } from './gitignore.js';
export { Git } from './git.js';
export { defineWorker, describe } from './worker.js';
