// {{name}}: the work, free of WIT imports so `node --test` can run it.

/** A parameter the worker refuses; guest.js turns it into `invalid-input`. */
export class InvalidInput extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
    this.detail = message;
  }
}

/** Greets `params.name` `params.times` times, reporting progress through `progress(pct, msg)`. */
export function greet(params, progress = () => {}) {
  const name = String(params.name ?? 'world').trim();
  if (name === '') throw new InvalidInput('name', 'must not be blank');
  const times = params.times ?? 1;
  const lines = [];
  for (let i = 0; i < times; i += 1) {
    lines.push(`Hello, ${name}!`);
    progress(Math.floor(((i + 1) * 100) / times), `greeted ${i + 1} of ${times}`);
  }
  return lines;
}
