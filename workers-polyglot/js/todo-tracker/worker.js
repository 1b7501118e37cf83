// todo-tracker: finds TODO/FIXME-style markers in a tree's text files, honouring .gitignore,
// and writes a Markdown and JSON report to the job's output folder. Built on @alephauto/guest:
// the definition below is the whole worker; guest.js only exports it.

import { defineWorker, p, JobError, GitError } from '@alephauto/guest';
import { scanTree, renderMarkdown } from './scan.js';

export const Params = p.object({
  repositoryPath: p.string({ path: 'read', description: 'Folder to scan (a git work tree or any folder).' }),
  markers: p.array(p.string({ pattern: '^[A-Za-z][A-Za-z0-9_-]*$' }), {
    default: ['TODO', 'FIXME', 'HACK', 'XXX'],
    minItems: 1,
    maxItems: 32,
    uniqueItems: true,
    description: 'Marker words, matched as whole words (case-sensitive).',
  }),
  exclude: p.array(p.string({ minLength: 1 }), { default: [], description: 'Extra ignore patterns (.gitignore syntax).' }),
  gitignore: p.boolean({ default: true, description: 'Skip what .gitignore, .ignore and .git/info/exclude ignore.' }),
  followSymlinks: p.boolean({
    default: false,
    description: 'Scan the files symlinks point to; the sandbox refuses targets outside the grant (listed under refused).',
  }),
  maxFileBytes: p.integer({ minimum: 1, maximum: 67108864, default: 1048576, description: 'Larger files are skipped.' }),
  maxMarkers: p.integer({ minimum: 1, maximum: 100000, default: 10000, description: 'Stop listing after this many.' }),
});

export default defineWorker({
  id: 'todo-tracker',
  version: '0.1.0',
  name: 'TODO tracker',
  description:
    'Finds TODO, FIXME, HACK and XXX markers (or your own words) in the text files of a folder, honouring '
    + '.gitignore, with file, line and text; flags markers in files git does not track; writes todo-report.md '
    + 'and todo-report.json to the output folder.',
  params: Params,

  run(ctx, params) {
    const root = params.repositoryPath;
    if (!ctx.fs.isDir(root)) throw JobError.invalid('repositoryPath', `${root} is not a folder`);
    ctx.progress(0, 'reading git state');
    const git = gitState(ctx, root);
    const report = scanTree(ctx, root, params, git);
    const markdown = renderMarkdown(report);
    if (ctx.outputDir) {
      ctx.fs.write(ctx.outputPath('todo-report.md'), markdown);
      ctx.fs.write(ctx.outputPath('todo-report.json'), `${JSON.stringify(report, null, 2)}\n`);
      report.reportFile = ctx.outputPath('todo-report.md');
    }
    ctx.log.info('todo-tracker: done', { files: report.filesScanned, markers: report.total, refused: report.refused.length });
    ctx.progress(100, `${report.total} markers in ${report.filesScanned} files`);
    return report;
  },
});

/** Branch and tracked files when `root` is in a git work tree; null otherwise. */
function gitState(ctx, root) {
  try {
    const top = ctx.git.toplevel(root);
    const prefix = root === top ? '' : `${root.slice(top.length + 1)}/`;
    const tracked = new Set();
    for (const f of ctx.git.trackedFiles(top)) if (f.startsWith(prefix)) tracked.add(f.slice(prefix.length));
    return { branch: ctx.git.currentBranch(top), toplevel: top, tracked };
  } catch (err) {
    if (err instanceof GitError && (err.kind === 'not-a-repository' || err.kind === 'denied')) {
      ctx.log.debug('todo-tracker: not in a granted git work tree', { reason: err.message });
      return null;
    }
    throw err;
  }
}
