// {{name}}: the component's exports for the `pipeline-worker` world in ./wit.
// Results: return a JSON string. Errors: throw a `job-error` variant value,
// e.g. { tag: 'invalid-input', val: { field, message } } — a plain Error would trap.
// The JS engine has no filesystem API: work on parameters or use the host imports.

import { log, progress } from 'alephauto:worker/host@0.1.0';
import { InvalidInput, greet } from './hello.js';

const SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', default: 'world', description: 'Who to greet.' },
    times: { type: 'integer', minimum: 1, maximum: 100, default: 1, description: 'How many times.' },
  },
};

export const worker = {
  describe() {
    return {
      id: '{{name}}',
      version: '0.1.0',
      name: '{{name}}',
      description: 'Says hello (scaffolded by alephauto new-worker).',
      paramsSchema: JSON.stringify(SCHEMA),
      gitWorkflow: undefined,
    };
  },
  init(_config) {},
  run(job) {
    try {
      const params = JSON.parse(job.params);
      log('info', `greeting ${params.name}`, JSON.stringify({ jobId: job.id }));
      const lines = greet(params, (pct, msg) => progress(pct, msg));
      return JSON.stringify({ greeting: lines[0], lines, jobId: job.id });
    } catch (err) {
      if (err instanceof InvalidInput) throw { tag: 'invalid-input', val: { field: err.field, message: err.detail } };
      throw { tag: 'failed', val: String(err) };
    }
  },
  shutdown() {},
};
