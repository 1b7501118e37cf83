// changelog: turns Conventional Commits into a Markdown changelog section and the
// semantic-version bump they imply. Pure logic (no SDK or WIT imports), so `node --test` can
// run it; worker.js wires it to the AlephAuto host through the JS SDK.

/** A parameter the worker refuses; worker.js turns it into `invalid-input`. */
export class InvalidInput extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
    this.detail = message;
  }
}

/** Section headings, in output order, for each Conventional Commits type. */
export const SECTIONS = [
  ['feat', 'Features'],
  ['fix', 'Bug fixes'],
  ['perf', 'Performance'],
  ['revert', 'Reverts'],
  ['refactor', 'Refactoring'],
  ['docs', 'Documentation'],
  ['test', 'Tests'],
  ['build', 'Build'],
  ['ci', 'Continuous integration'],
  ['style', 'Style'],
  ['chore', 'Chores'],
];
const KNOWN = new Map(SECTIONS);

const HEADER = /^(?<type>[a-zA-Z]+)(?:\((?<scope>[^()\r\n]*)\))?(?<bang>!)?: +(?<description>\S.*)$/;
const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** Parses one commit subject (+ body); null when it is not a Conventional Commit. */
export function parseCommit(subject, body = '') {
  const m = HEADER.exec(subject.trim());
  if (!m) return null;
  const type = m.groups.type.toLowerCase();
  const breakingNote = /^BREAKING[ -]CHANGE: *(.+)$/m.exec(body || '');
  return {
    type,
    scope: m.groups.scope ? m.groups.scope.trim() : null,
    description: m.groups.description.trim(),
    breaking: Boolean(m.groups.bang) || Boolean(breakingNote),
    breakingNote: breakingNote ? breakingNote[1].trim() : null,
  };
}

/** Parses `1.2.3` / `v1.2.3`; throws InvalidInput naming `field`. */
export function parseVersion(text, field) {
  const m = SEMVER.exec(String(text).trim());
  if (!m) throw new InvalidInput(field, `${JSON.stringify(text)} is not a semantic version like 1.4.0`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** The next version after `prev` for a bump (0.x: breaking bumps the minor). */
export function nextVersion(prev, bump) {
  const [major, minor, patch] = prev;
  switch (bump) {
    case 'major': return major === 0 ? `0.${minor + 1}.0` : `${major + 1}.0.0`;
    case 'minor': return `${major}.${minor + 1}.0`;
    case 'patch': return `${major}.${minor}.${patch + 1}`;
    default: return `${major}.${minor}.${patch}`;
  }
}

/** Validates the inline `commits` array; returns normalised commits. */
export function checkCommits(commits) {
  return commits.map((c, i) => {
    if (typeof c.subject !== 'string' || c.subject.trim() === '') {
      throw new InvalidInput(`commits/${i}/subject`, 'must be a non-empty commit subject');
    }
    return { sha: c.sha || '', subject: c.subject, body: c.body || '', author: c.author || '' };
  });
}

/** Parses an ISO date (`2024-05-01` or a full timestamp) to Unix seconds. */
export function parseDate(text, field) {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(String(text)) || Number.isNaN(ms)) {
    throw new InvalidInput(field, `${JSON.stringify(text)} is not a date like 2024-05-01`);
  }
  return Math.floor(ms / 1000);
}

/**
 * Builds the changelog. `commits`: [{sha, subject, body, author}] newest first.
 * `opts`: {version, previousVersion, date, includeOther, repoUrl}; `report(pct, msg)` for progress.
 */
export function buildChangelog(commits, opts, report = () => {}) {
  const groups = new Map();
  const breaking = [];
  const other = [];
  let conventional = 0;
  commits.forEach((c, i) => {
    const parsed = parseCommit(c.subject, c.body);
    if (!parsed) {
      other.push(c);
    } else {
      conventional += 1;
      const entry = { ...parsed, sha: c.sha, author: c.author };
      if (parsed.breaking) breaking.push(entry);
      const key = KNOWN.has(parsed.type) ? parsed.type : 'other';
      if (key === 'other') other.push(c);
      else (groups.get(key) || groups.set(key, []).get(key)).push(entry);
    }
    if (commits.length > 0 && (i + 1) % 50 === 0) {
      report(20 + Math.floor((60 * (i + 1)) / commits.length), `parsed ${i + 1} of ${commits.length} commits`);
    }
  });

  const bump = breaking.length > 0 ? 'major' : groups.has('feat') ? 'minor'
    : (groups.has('fix') || groups.has('perf')) ? 'patch' : 'none';
  const prev = opts.previousVersion ? parseVersion(opts.previousVersion, 'previousVersion') : null;
  if (opts.version) parseVersion(opts.version, 'version');
  const version = opts.version || (prev ? nextVersion(prev, bump) : 'Unreleased');

  const link = (sha) => {
    if (!sha) return '';
    const short = sha.slice(0, 7);
    return opts.repoUrl ? ` ([${short}](${opts.repoUrl.replace(/\/$/, '')}/commit/${sha}))` : ` (${short})`;
  };
  const line = (e) => `- ${e.scope ? `**${e.scope}:** ` : ''}${e.description}${link(e.sha)}`;

  const out = [`## ${version}${opts.date ? ` (${opts.date})` : ''}`, ''];
  if (breaking.length > 0) {
    out.push('### ⚠ Breaking changes', '');
    for (const e of breaking) out.push(`- ${e.scope ? `**${e.scope}:** ` : ''}${e.breakingNote || e.description}${link(e.sha)}`);
    out.push('');
  }
  const sections = {};
  for (const [type, heading] of SECTIONS) {
    const entries = groups.get(type);
    if (!entries) continue;
    sections[heading] = entries.length;
    out.push(`### ${heading}`, '');
    for (const e of entries) out.push(line(e));
    out.push('');
  }
  if (opts.includeOther && other.length > 0) {
    sections.Other = other.length;
    out.push('### Other', '');
    for (const c of other) out.push(`- ${c.subject.trim()}${link(c.sha)}`);
    out.push('');
  }
  if (out.length === 2) out.push('_No notable changes._', '');

  return {
    version,
    previousVersion: opts.previousVersion || null,
    bump,
    commits: commits.length,
    conventional,
    skipped: opts.includeOther ? 0 : other.length,
    breaking: breaking.map((e) => e.breakingNote || e.description),
    sections,
    markdown: out.join('\n'),
  };
}
