// {{name}}: the worker, on the AlephAuto JavaScript SDK (@alephauto/guest).
// Parameters are typed with `p.*` (the host validates the JSON Schema they produce); `run`
// returns the job's result; throw `JobError.invalid(field, message)` for a bad parameter.
// Files: `ctx.fs.readText(path)`, `ctx.fs.write(path, data)`, `ctx.fs.walk(root)` (honours
// .gitignore) on folders named by `p.string({ path: 'read' | 'write' })` parameters.

import { defineWorker, p, JobError } from '@alephauto/guest';

export default defineWorker({
  id: '{{name}}',
  version: '0.1.0',
  name: '{{name}}',
  description: 'Says hello (scaffolded by alephauto new-worker).',
  params: p.object({
    name: p.string({ default: 'world', description: 'Who to greet.' }),
    times: p.integer({ minimum: 1, maximum: 100, default: 1, description: 'How many times.' }),
  }),

  run(ctx, params) {
    const name = params.name.trim();
    if (name === '') throw JobError.invalid('name', 'must not be blank');
    ctx.log.info(`greeting ${name}`, { jobId: ctx.job.id });
    const lines = [];
    for (let i = 0; i < params.times; i += 1) {
      ctx.checkCancelled();
      lines.push(`Hello, ${name}!`);
      ctx.progress(((i + 1) * 100) / params.times, `greeted ${i + 1} of ${params.times}`);
    }
    return { greeting: lines[0], lines, jobId: ctx.job.id };
  },
});
