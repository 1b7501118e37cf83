// The scan: walk (SDK, .gitignore-aware), read each text file, collect markers. Takes a
// Context, so node --test runs it over a fake host with real files.

import { FsError, looksBinary } from '@alephauto/guest';

const MAX_TEXT = 200;

/** A regex finding any of `markers` as a whole word, with the text after it. */
export function markerRegex(markers) {
  const words = markers.join('|');
  return new RegExp(`(?<![A-Za-z0-9_])(${words})(?![A-Za-z0-9_])(?:\\([^)]*\\))?[:!]?\\s*(.*)$`);
}

/** The markers on the lines of `text`: `[{ line, marker, text }]`. */
export function findMarkers(text, regex) {
  const out = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const m = regex.exec(lines[i]);
    if (!m) continue;
    let rest = m[2].replace(/\s*(\*\/|-->|#\}|%>)\s*$/, '').trim();
    if (rest.length > MAX_TEXT) rest = `${rest.slice(0, MAX_TEXT - 1)}…`;
    out.push({ line: i + 1, marker: m[1], text: rest });
  }
  return { markers: out, lines: lines.length };
}

/** Scans `root`; `git` is `{ branch, tracked: Set }` or null. */
export function scanTree(ctx, root, params, git) {
  const regex = markerRegex(params.markers);
  const report = {
    repositoryPath: root,
    filesScanned: 0,
    linesScanned: 0,
    bytesScanned: 0,
    total: 0,
    counts: Object.fromEntries(params.markers.map((m) => [m, 0])),
    markers: [],
    truncated: false,
    skipped: { binary: 0, tooLarge: 0, symlinks: 0 },
    refused: [],
    unreadable: [],
    git: git ? { branch: git.branch, trackedFiles: git.tracked.size, untrackedWithMarkers: 0 } : null,
  };

  ctx.progress(5, 'listing files');
  const files = [];
  for (const e of ctx.fs.walk(root, { gitignore: params.gitignore, ignore: params.exclude })) {
    if (e.kind === 'file') files.push(e);
    else if (e.kind === 'symlink') {
      if (params.followSymlinks) files.push(e);
      else report.skipped.symlinks += 1;
    } else if (e.kind === 'error') {
      report.unreadable.push({ file: e.relative, error: e.error.message });
    }
  }
  ctx.log.info('todo-tracker: files listed', { files: files.length });

  const untracked = new Set();
  files.forEach((e, index) => {
    ctx.checkCancelled();
    let bytes;
    try {
      const st = ctx.fs.stat(e.path, { follow: true });
      if (st.kind !== 'file') return;
      if (st.size > params.maxFileBytes) {
        report.skipped.tooLarge += 1;
        return;
      }
      bytes = ctx.fs.readBytes(e.path);
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      const entry = { file: e.relative, error: err.message, code: err.code };
      if (err.denied) {
        report.refused.push(entry);
        ctx.log.warn(`refused: ${e.relative}`, entry);
      } else {
        report.unreadable.push(entry);
      }
      return;
    }
    if (looksBinary(bytes)) {
      report.skipped.binary += 1;
      return;
    }
    const { markers, lines } = findMarkers(new TextDecoder().decode(bytes), regex);
    report.filesScanned += 1;
    report.linesScanned += lines;
    report.bytesScanned += bytes.length;
    for (const m of markers) {
      report.total += 1;
      report.counts[m.marker] += 1;
      const tracked = git ? git.tracked.has(e.relative) : null;
      if (git && !tracked) untracked.add(e.relative);
      if (report.markers.length < params.maxMarkers) report.markers.push({ file: e.relative, ...m, tracked });
      else report.truncated = true;
    }
    if ((index + 1) % 25 === 0 || index + 1 === files.length) {
      ctx.progress(10 + Math.floor((85 * (index + 1)) / files.length), `scanned ${index + 1} of ${files.length} files`);
    }
  });
  if (report.git) report.git.untrackedWithMarkers = untracked.size;
  return report;
}

/** The report as Markdown: counts, then markers grouped by file. */
export function renderMarkdown(report) {
  const out = [`# Markers in ${report.repositoryPath}`, ''];
  const counts = Object.entries(report.counts).map(([m, n]) => `${m}: ${n}`).join(', ');
  out.push(`${report.total} markers (${counts}) in ${report.filesScanned} files.`, '');
  if (report.git) out.push(`Branch \`${report.git.branch}\`; ${report.git.untrackedWithMarkers} untracked files have markers.`, '');
  let current = null;
  for (const m of report.markers) {
    if (m.file !== current) {
      current = m.file;
      out.push(`## ${m.file}`, '');
    }
    const flag = m.tracked === false ? ' _(untracked)_' : '';
    out.push(`- line ${m.line}: **${m.marker}** ${m.text}${flag}`);
  }
  if (report.truncated) out.push('', `_Listing stopped at ${report.markers.length} markers._`);
  if (report.refused.length > 0) {
    out.push('', '## Refused by the sandbox', '');
    for (const r of report.refused) out.push(`- ${r.file}: ${r.error}`);
  }
  return `${out.join('\n')}\n`;
}
