// The changelog pipeline worker on @alephauto/guest. Commits come either inline (`commits`)
// or from a repository through the host's `git` import; the logic is in changelog.js.

import { defineWorker, p, JobError, GitError } from '@alephauto/guest';
import { InvalidInput, buildChangelog, checkCommits, parseDate } from './changelog.js';

const Commit = p.object({
  sha: p.optional(p.string()),
  subject: p.string(),
  body: p.optional(p.string()),
  author: p.optional(p.string()),
});

export const Params = p.object(
  {
    repositoryPath: p.optional(p.string({
      path: 'read',
      description: 'Git repository whose history is summarised (read through the host git capability).',
    })),
    commits: p.optional(p.array(Commit, { description: 'Commits to summarise instead of a repository, newest first.' })),
    since: p.optional(p.string({ description: 'With repositoryPath: first day included (YYYY-MM-DD).' })),
    until: p.optional(p.string({ description: 'With repositoryPath: first day excluded (YYYY-MM-DD); default now.' })),
    version: p.optional(p.string({ description: 'Heading version; default previousVersion bumped, else Unreleased.' })),
    previousVersion: p.optional(p.string({ description: 'Last released version (semver), to compute the next one.' })),
    date: p.optional(p.string({ description: 'Date shown in the heading.' })),
    repoUrl: p.optional(p.string({ description: 'Web URL of the repository, for commit links.' })),
    includeOther: p.boolean({ default: false, description: 'List non-conventional commits under Other.' }),
  },
  { title: 'changelog parameters' },
);

/** The commits to summarise, from the parameters or the repository's history. */
function loadCommits(ctx, params) {
  if (params.repositoryPath !== undefined && params.commits !== undefined) {
    throw JobError.invalid('commits', 'give either repositoryPath or commits, not both');
  }
  if (params.repositoryPath === undefined && params.commits === undefined) {
    throw JobError.invalid('repositoryPath', 'give repositoryPath (a git repository) or commits (a list)');
  }
  if (params.commits !== undefined) return checkCommits(params.commits);
  const since = params.since !== undefined ? parseDate(params.since, 'since') : 0;
  const until = params.until !== undefined ? parseDate(params.until, 'until') : Math.floor(Date.now() / 1000) + 86400;
  if (until <= since) throw JobError.invalid('until', 'must be after since');
  let history;
  try {
    history = ctx.git.log(params.repositoryPath, since, until);
  } catch (err) {
    if (err instanceof GitError && err.kind === 'not-a-repository') throw JobError.invalid('repositoryPath', `not a git repository: ${err.detail}`);
    if (err instanceof GitError && err.kind === 'denied') throw JobError.invalid('repositoryPath', `not granted: ${err.detail}`);
    throw err;
  }
  // The host lists commits newest first; the WIT record has no body, so breaking changes need `!`.
  return history.map((c) => ({ sha: c.sha, subject: c.subject, body: '', author: c.authorName }));
}

export default defineWorker({
  id: 'changelog',
  version: '0.2.0',
  name: 'Changelog',
  description:
    'Turns Conventional Commits (from a repository through the host git capability, or passed inline) into a '
    + 'Markdown changelog section grouped by type, lists breaking changes and computes the semantic-version bump.',
  params: Params,

  run(ctx, params) {
    try {
      ctx.progress(5, 'reading commits');
      const commits = loadCommits(ctx, params);
      ctx.log.info('changelog: commits loaded', { commits: commits.length, source: params.commits ? 'params' : 'git' });
      ctx.checkCancelled();
      ctx.progress(20, `parsing ${commits.length} commits`);
      const result = buildChangelog(commits, params, (pct, msg) => ctx.progress(pct, msg));
      ctx.log.info('changelog: done', { bump: result.bump, version: result.version, skipped: result.skipped });
      ctx.progress(100, `${result.conventional} conventional commits, bump ${result.bump}`);
      return result;
    } catch (err) {
      // changelog.js stays free of the SDK; its refusals name the field.
      if (err instanceof InvalidInput) throw JobError.invalid(err.field, err.detail);
      throw err;
    }
  },
});
