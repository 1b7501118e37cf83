// Typed parameters: builders that produce the JSON Schema the host validates with, and a
// parser that applies its defaults and names the offending field (the SDK's `serde` + `schemars`).
//
//   const Params = p.object({
//     repositoryPath: p.string({ path: 'read', description: 'Folder to scan.' }),
//     maxFiles: p.integer({ minimum: 1, default: 5000 }),
//     since: p.optional(p.string()),
//   });
//
// Objects are closed (`additionalProperties: false`), so the host answers 400 for an unknown
// parameter. A property is required unless it has a default or is wrapped in `p.optional`.

import { JobError } from './errors.js';

const ANNOTATIONS = ['title', 'description', 'examples'];

/** One parameter type: its JSON Schema and how to check and normalise a value of it. */
export class Param {
  constructor(schema, check, { optional = false } = {}) {
    this.schema = schema;
    this.check = check;
    this.optional = optional;
  }

  /** The schema with a default, if any. */
  get hasDefault() {
    return Object.hasOwn(this.schema, 'default');
  }

  /** The root schema as the host expects it in `worker-info.params-schema`. */
  toSchema() {
    return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...this.schema };
  }

  /** Checks `value` (already JSON-decoded); throws `JobError.invalid` naming the field. */
  parse(value) {
    return this.check(value, '');
  }
}

function base(type, opts, extra = {}) {
  const schema = { type, ...extra };
  for (const k of ANNOTATIONS) if (opts[k] !== undefined) schema[k] = opts[k];
  if (opts.default !== undefined) schema.default = structuredClone(opts.default);
  if (opts.path !== undefined) {
    if (opts.path !== 'read' && opts.path !== 'write') throw new TypeError(`path must be 'read' or 'write', not ${opts.path}`);
    schema['x-alephauto-path'] = opts.path;
  }
  return schema;
}

const fieldName = (at) => (at === '' ? 'params' : at);
const fail = (at, message) => {
  throw JobError.invalid(fieldName(at), message);
};
const typeName = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function checkEnum(schema, v, at) {
  if (schema.enum && !schema.enum.includes(v)) fail(at, `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
}

/** A string; `path: 'read' | 'write'` marks a path the host grants. Options: minLength, maxLength, pattern, enum. */
export function string(opts = {}) {
  const extra = {};
  for (const k of ['minLength', 'maxLength', 'pattern', 'enum', 'format']) if (opts[k] !== undefined) extra[k] = opts[k];
  const schema = base('string', opts, extra);
  const re = opts.pattern !== undefined ? new RegExp(opts.pattern, 'u') : null;
  return new Param(schema, (v, at) => {
    if (typeof v !== 'string') fail(at, `expected a string, got ${typeName(v)}`);
    if (opts.minLength !== undefined && [...v].length < opts.minLength) fail(at, `must be at least ${opts.minLength} characters`);
    if (opts.maxLength !== undefined && [...v].length > opts.maxLength) fail(at, `must be at most ${opts.maxLength} characters`);
    if (re && !re.test(v)) fail(at, `must match ${opts.pattern}`);
    checkEnum(schema, v, at);
    return v;
  });
}

function numeric(type, opts) {
  const extra = {};
  for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'enum']) if (opts[k] !== undefined) extra[k] = opts[k];
  const schema = base(type, opts, extra);
  return new Param(schema, (v, at) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(at, `expected ${type === 'integer' ? 'an integer' : 'a number'}, got ${typeName(v)}`);
    if (type === 'integer' && !Number.isInteger(v)) fail(at, `expected an integer, got ${v}`);
    if (opts.minimum !== undefined && v < opts.minimum) fail(at, `must be at least ${opts.minimum}`);
    if (opts.maximum !== undefined && v > opts.maximum) fail(at, `must be at most ${opts.maximum}`);
    if (opts.exclusiveMinimum !== undefined && v <= opts.exclusiveMinimum) fail(at, `must be more than ${opts.exclusiveMinimum}`);
    if (opts.exclusiveMaximum !== undefined && v >= opts.exclusiveMaximum) fail(at, `must be less than ${opts.exclusiveMaximum}`);
    checkEnum(schema, v, at);
    return v;
  });
}

/** An integer. Options: minimum, maximum, exclusiveMinimum, exclusiveMaximum, enum. */
export const integer = (opts = {}) => numeric('integer', opts);
/** A number. Same options as `integer`. */
export const number = (opts = {}) => numeric('number', opts);

/** A boolean. */
export function boolean(opts = {}) {
  return new Param(base('boolean', opts), (v, at) => {
    if (typeof v !== 'boolean') fail(at, `expected true or false, got ${typeName(v)}`);
    return v;
  });
}

/** An array of `item`. Options: minItems, maxItems, uniqueItems. */
export function array(item, opts = {}) {
  const extra = { items: item.schema };
  for (const k of ['minItems', 'maxItems', 'uniqueItems']) if (opts[k] !== undefined) extra[k] = opts[k];
  return new Param(base('array', opts, extra), (v, at) => {
    if (!Array.isArray(v)) fail(at, `expected an array, got ${typeName(v)}`);
    if (opts.minItems !== undefined && v.length < opts.minItems) fail(at, `must have at least ${opts.minItems} items`);
    if (opts.maxItems !== undefined && v.length > opts.maxItems) fail(at, `must have at most ${opts.maxItems} items`);
    const out = v.map((x, i) => item.check(x, at === '' ? String(i) : `${at}/${i}`));
    if (opts.uniqueItems && new Set(out.map((x) => JSON.stringify(x))).size !== out.length) fail(at, 'must not repeat items');
    return out;
  });
}

/** A closed object of named properties (each a `Param`). Options: title, description. */
export function object(properties, opts = {}) {
  const props = {};
  const required = [];
  for (const [name, param] of Object.entries(properties)) {
    if (!(param instanceof Param)) throw new TypeError(`property ${name} is not a parameter type (use p.string() etc.)`);
    props[name] = param.schema;
    if (!param.optional && !param.hasDefault) required.push(name);
  }
  const schema = base('object', opts, { additionalProperties: false, properties: props });
  if (required.length > 0) schema.required = required;
  return new Param(schema, (v, at) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, `expected an object, got ${typeName(v)}`);
    const join = (k) => (at === '' ? k : `${at}/${k}`);
    for (const k of Object.keys(v)) if (!Object.hasOwn(properties, k)) fail(join(k), 'unknown parameter');
    const out = {};
    for (const [name, param] of Object.entries(properties)) {
      if (v[name] === undefined) {
        if (param.hasDefault) out[name] = structuredClone(param.schema.default);
        else if (!param.optional) fail(join(name), 'is required');
        continue;
      }
      out[name] = param.check(v[name], join(name));
    }
    return out;
  });
}

/** `param` may be left out (then it is `undefined` in the parsed object). */
export function optional(param) {
  return new Param(param.schema, param.check, { optional: true });
}
