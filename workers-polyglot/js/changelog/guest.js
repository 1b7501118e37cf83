// The changelog pipeline worker: ComponentizeJS guest for the `pipeline-worker` world
// (../../../wit). Commits come either inline (`commits`) or from a repository through the
// host's `git` import: the JS engine has no filesystem API, so the host reads the history.

import { log, progress, cancelled } from 'alephauto:worker/host@0.1.0';
import { log as gitLog } from 'alephauto:worker/git@0.1.0';
import { InvalidInput, buildChangelog, checkCommits, parseDate } from './changelog.js';

const VERSION = '0.1.0';

const SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'changelog parameters',
  type: 'object',
  additionalProperties: false,
  properties: {
    repositoryPath: {
      type: 'string',
      description: 'Git repository whose history is summarised (read through the host git capability).',
      'x-alephauto-path': 'read',
    },
    commits: {
      type: 'array',
      description: 'Commits to summarise instead of a repository, newest first.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['subject'],
        properties: {
          sha: { type: 'string' },
          subject: { type: 'string' },
          body: { type: 'string' },
          author: { type: 'string' },
        },
      },
    },
    since: { type: 'string', description: 'With repositoryPath: first day included (YYYY-MM-DD).' },
    until: { type: 'string', description: 'With repositoryPath: first day excluded (YYYY-MM-DD); default now.' },
    version: { type: 'string', description: 'Heading version; default previousVersion bumped, else Unreleased.' },
    previousVersion: { type: 'string', description: 'Last released version (semver), to compute the next one.' },
    date: { type: 'string', description: 'Date shown in the heading.' },
    repoUrl: { type: 'string', description: 'Web URL of the repository, for commit links.' },
    includeOther: { type: 'boolean', default: false, description: 'List non-conventional commits under Other.' },
  },
};

const field = (f, message) => ({ tag: 'invalid-input', val: { field: f, message } });

function gitFailure(err) {
  // An imported function returning `result` throws its error value (on `.payload` when wrapped).
  const e = err && err.payload !== undefined ? err.payload : err;
  if (e && e.tag === 'not-a-repository') return field('repositoryPath', `not a git repository: ${e.val}`);
  if (e && e.tag === 'denied') return field('repositoryPath', `not granted: ${e.val}`);
  if (e && e.tag === 'timeout') return { tag: 'retryable', val: `git timed out: ${e.val}` };
  if (e && e.tag) return { tag: 'failed', val: `git ${e.tag}: ${e.val}` };
  return { tag: 'failed', val: `git log failed: ${e}` };
}

function loadCommits(p) {
  if (p.repositoryPath !== undefined && p.commits !== undefined) {
    throw new InvalidInput('commits', 'give either repositoryPath or commits, not both');
  }
  if (p.repositoryPath === undefined && p.commits === undefined) {
    throw new InvalidInput('repositoryPath', 'give repositoryPath (a git repository) or commits (a list)');
  }
  if (p.commits !== undefined) return checkCommits(p.commits);
  const since = p.since !== undefined ? parseDate(p.since, 'since') : 0;
  const until = p.until !== undefined ? parseDate(p.until, 'until') : Math.floor(Date.now() / 1000) + 86400;
  if (until <= since) throw new InvalidInput('until', 'must be after since');
  let history;
  try {
    history = gitLog(p.repositoryPath, BigInt(since), BigInt(until));
  } catch (err) {
    throw gitFailure(err);
  }
  // The host lists commits newest first; the WIT record has no body, so breaking changes need `!`.
  return history.map((c) => ({ sha: c.sha, subject: c.subject, body: '', author: c.authorName }));
}

export const worker = {
  describe() {
    return {
      id: 'changelog',
      version: VERSION,
      name: 'Changelog',
      description:
        'Turns Conventional Commits (from a repository through the host git capability, or passed inline) into a '
        + 'Markdown changelog section grouped by type, lists breaking changes and computes the semantic-version bump.',
      paramsSchema: JSON.stringify(SCHEMA),
      gitWorkflow: undefined,
    };
  },

  init(config) {
    if (config && config.trim() !== '') JSON.parse(config);
  },

  run(job) {
    try {
      const p = JSON.parse(job.params);
      progress(5, 'reading commits');
      const commits = loadCommits(p);
      log('info', 'changelog: commits loaded', JSON.stringify({ commits: commits.length, source: p.commits ? 'params' : 'git' }));
      if (cancelled()) throw { tag: 'failed', val: 'cancelled' };
      progress(20, `parsing ${commits.length} commits`);
      const result = buildChangelog(commits, p, (pct, msg) => progress(pct, msg));
      log('info', 'changelog: done', JSON.stringify({ bump: result.bump, version: result.version, skipped: result.skipped }));
      progress(100, `${result.conventional} conventional commits, bump ${result.bump}`);
      return JSON.stringify(result);
    } catch (err) {
      throw toJobError(err);
    }
  },

  shutdown() {},
};

/** Every exception becomes a typed `job-error` (a plain Error thrown out of an export would trap). */
function toJobError(err) {
  if (err instanceof InvalidInput) {
    log('warn', `invalid parameter ${err.field}`, JSON.stringify({ field: err.field, message: err.detail }));
    return field(err.field, err.detail);
  }
  if (err && typeof err.tag === 'string') return err;
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  log('error', 'changelog failed', JSON.stringify({ error: message }));
  return { tag: 'failed', val: message };
}
