// `.gitignore` rules (gitignore(5)): comments, `!` negation, trailing `/` for folders only,
// anchoring by an inner or leading `/`, `*`, `?`, `[...]`, and `**` in its three forms.
// The unit tests compare every case with `git check-ignore`.

/** One compiled pattern. */
class Rule {
  constructor(source, regex, negated, dirOnly) {
    this.source = source;
    this.regex = regex;
    this.negated = negated;
    this.dirOnly = dirOnly;
  }
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Translates the glob part of a pattern (no leading `!`, no trailing `/`) to a regex body. */
function globToRegex(glob) {
  let out = '';
  let i = 0;
  while (i < glob.length) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const startsSegment = i === 0 || glob[i - 1] === '/';
        const endsSegment = i + 2 === glob.length || glob[i + 2] === '/';
        if (startsSegment && endsSegment) {
          if (i + 2 === glob.length) {
            out += '.*'; // `foo/**`: everything inside
          } else {
            out += '(?:.*/)?'; // `**/` and `/**/`: zero or more folders
            i += 1; // the slash
          }
          i += 2;
          continue;
        }
        // Other consecutive asterisks are plain asterisks.
        while (glob[i + 1] === '*') i += 1;
      }
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = classEnd(glob, i);
      if (end < 0) {
        out += '\\[';
      } else {
        let body = glob.slice(i + 1, end);
        let negate = false;
        if (body[0] === '!' || body[0] === '^') {
          negate = true;
          body = body.slice(1);
        }
        body = body.replace(/\\(.)/g, '$1').replace(/[\\\]^]/g, '\\$&');
        out += negate ? `[^/${body}]` : `[${body}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < glob.length) {
      i += 1;
      out += escapeRe(glob[i]);
    } else {
      out += escapeRe(c);
    }
    i += 1;
  }
  return out;
}

/** Index of the `]` closing the class opened at `start`, or -1. */
function classEnd(glob, start) {
  let j = start + 1;
  if (glob[j] === '!' || glob[j] === '^') j += 1;
  if (glob[j] === ']') j += 1; // a leading `]` is literal
  for (; j < glob.length; j += 1) {
    if (glob[j] === '\\') j += 1;
    else if (glob[j] === ']') return j;
  }
  return -1;
}

/** Compiles one line; null for blanks and comments. */
export function compileLine(line) {
  let text = line.replace(/\r$/, '');
  // Trailing spaces are dropped unless escaped with a backslash.
  text = text.replace(/(?<!\\)[ \t]+$/, '').replace(/\\ $/, ' ');
  if (text === '' || text.startsWith('#')) return null;
  let negated = false;
  if (text.startsWith('!')) {
    negated = true;
    text = text.slice(1);
  } else if (text.startsWith('\\!') || text.startsWith('\\#')) {
    text = text.slice(1);
  }
  let dirOnly = false;
  if (text.endsWith('/') && !text.endsWith('\\/')) {
    dirOnly = true;
    text = text.replace(/\/+$/, '');
  }
  if (text === '') return null;
  const anchored = text.includes('/');
  if (text.startsWith('/')) text = text.slice(1);
  const body = globToRegex(text);
  const regex = new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`, 'su');
  return new Rule(line, regex, negated, dirOnly);
}

/** The rules of one ignore file, relative to the folder it lives in. */
export class IgnoreFile {
  /** @param {string} text file contents */
  constructor(text) {
    this.rules = text.split('\n').map(compileLine).filter(Boolean);
  }

  /** `true` ignored, `false` re-included by a `!` rule, `undefined` when no rule matches. */
  decide(relative, isDir) {
    for (let i = this.rules.length - 1; i >= 0; i -= 1) {
      const r = this.rules[i];
      if (r.dirOnly && !isDir) continue;
      if (r.regex.test(relative)) return !r.negated;
    }
    return undefined;
  }
}

/**
 * Layered ignore rules for a walk: files deeper in the tree take precedence over shallower
 * ones, later lines over earlier ones (git's order). Paths are `/`-separated and relative to
 * the walk root.
 */
export class IgnoreStack {
  constructor() {
    /** @type {{ base: string, file: IgnoreFile }[]} */
    this.layers = [];
  }

  /** Adds the rules of a file that lives in folder `base` ('' for the root). */
  add(base, text) {
    const file = new IgnoreFile(text);
    if (file.rules.length > 0) this.layers.push({ base, file });
  }

  /** True when `relative` (a file, or a folder when `isDir`) is ignored. */
  ignored(relative, isDir) {
    for (let i = this.layers.length - 1; i >= 0; i -= 1) {
      const { base, file } = this.layers[i];
      if (base !== '' && !relative.startsWith(`${base}/`)) continue;
      const decision = file.decide(base === '' ? relative : relative.slice(base.length + 1), isDir);
      if (decision !== undefined) return decision;
    }
    return false;
  }
}
