"""markdown-links: checks the relative links in a repository's Markdown files.

Built on the Python SDK (alephauto_guest): files are read through `ctx.fs`, the tree is
walked with the SDK's `.gitignore`-aware walk, and `python3 -m unittest` runs it natively over
the SDK's fake host (worker.py holds the parameters and the worker). For each inline link, image and reference
definition it resolves the target against the linking file (or the repository root for
`/abs` targets), checks that the file or folder exists inside the repository, and, for a
`#fragment` into a Markdown file, that a heading (GitHub slug rules) or an explicit
`id`/`name` anchor with that name exists. External links (`https:`, `mailto:`, `//host`)
are counted, never fetched: the sandbox has no sockets.
"""

from __future__ import annotations

import posixpath
import stat
import re
import urllib.parse
from dataclasses import dataclass, field, asdict
from typing import Dict, List, Optional, Set

from alephauto_guest import Context, FsError, JobError

MARKDOWN_EXTENSIONS = (".md", ".markdown", ".mdx")
DEFAULT_SKIP_DIRS = [".git", "node_modules", "target", "vendor", ".venv", "__pycache__"]

INLINE_LINK = re.compile(r"!?\[(?P<text>(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*)\]\(\s*(?P<target><[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[(?P<label>[^\]]+)\]:\s*(?P<target><[^>\n]*>|\S+)")
HEADING_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+\s*)?$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
HTML_ANCHOR = re.compile(r"<[a-zA-Z][^>]*?\s(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass
class BrokenLink:
    file: str
    line: int
    link: str
    reason: str
    detail: str


@dataclass
class Report:
    repository_path: str
    files_scanned: int = 0
    links_checked: int = 0
    external_links: int = 0
    broken: List[BrokenLink] = field(default_factory=list)
    truncated: bool = False

    def to_json(self) -> dict:
        return {
            "repositoryPath": self.repository_path,
            "filesScanned": self.files_scanned,
            "linksChecked": self.links_checked,
            "externalLinks": self.external_links,
            "brokenCount": len(self.broken),
            "ok": not self.broken,
            "truncated": self.truncated,
            "broken": [asdict(b) for b in self.broken],
        }


def check_options(skip_dirs: List[str]) -> None:
    """Semantic checks the JSON Schema cannot express; JobError naming the field."""
    for i, name in enumerate(skip_dirs):
        if not name or "/" in name or name in (".", ".."):
            raise JobError.invalid(f"skipDirs/{i}", f"{name!r} must be a plain folder name such as node_modules")


def slugify(heading: str) -> str:
    """GitHub's heading anchor: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors_of(text: str) -> Set[str]:
    """Every anchor a Markdown document defines: heading slugs (deduplicated -1, -2...) and HTML ids."""
    anchors: Set[str] = set()
    counts: Dict[str, int] = {}
    prev = ""
    in_fence: Optional[str] = None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence:
            marker = fence.group(1)
            if in_fence is None:
                in_fence = marker[0]
            elif marker[0] == in_fence:
                in_fence = None
            prev = ""
            continue
        if in_fence is not None:
            continue
        heading = None
        m = HEADING_ATX.match(line)
        if m:
            heading = m.group(2)
        elif prev.strip() and SETEXT_UNDERLINE.match(line) and not HEADING_ATX.match(prev):
            heading = prev.strip()
        if heading is not None:
            slug = slugify(heading.strip())
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
        for a in HTML_ANCHOR.findall(line):
            anchors.add(a)
        prev = line
    return anchors


def links_of(text: str):
    """Yields (line number, raw target) for inline links, images and reference definitions, outside code."""
    in_fence: Optional[str] = None
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            marker = fence.group(1)
            if in_fence is None:
                in_fence = marker[0]
            elif marker[0] == in_fence:
                in_fence = None
            continue
        if in_fence is not None or line.startswith("    ") or line.startswith("\t"):
            continue
        ref = REFERENCE_DEF.match(line)
        if ref:
            yield number, ref.group("target")
            continue
        stripped = CODE_SPAN.sub("", line)
        for m in INLINE_LINK.finditer(stripped):
            yield number, m.group("target")


def markdown_files(ctx: Context, root: str, params, report: Report) -> List[str]:
    """Markdown files under root in walk order (SDK walk: .gitignore honoured when asked, hidden
    folders (the `.*/` pattern) and params.skip_dirs skipped, symlinks not followed)."""
    found: List[str] = []
    walk = ctx.fs.walk(root, gitignore=params.gitignore, ignore=[".*/"], skip_dirs=params.skip_dirs)
    for entry in walk:
        if entry.kind == "file" and entry.relative.lower().endswith(MARKDOWN_EXTENSIONS):
            found.append(entry.path)
            if len(found) >= params.max_files:
                report.truncated = True
                break
    return found


def check_repository(ctx: Context, root: str, params) -> Report:
    """Checks every relative link of every Markdown file under root."""
    root = posixpath.normpath(root)
    report = Report(repository_path=root)
    files = markdown_files(ctx, root, params, report)
    anchor_cache: Dict[str, Set[str]] = {}

    def anchors_for(path: str) -> Set[str]:
        if path not in anchor_cache:
            anchor_cache[path] = anchors_of(ctx.fs.read_text(path))
        return anchor_cache[path]

    ctx.progress(10, f"found {len(files)} Markdown files")
    for index, path in enumerate(files):
        ctx.check_cancelled()
        rel_file = posixpath.relpath(path, root)
        text = ctx.fs.read_text(path)
        anchor_cache.setdefault(path, anchors_of(text))
        report.files_scanned += 1
        for line, raw in links_of(text):
            target = raw[1:-1] if raw.startswith("<") and raw.endswith(">") else raw
            if not target:
                continue
            if SCHEME.match(target) or target.startswith("//"):
                report.external_links += 1
                continue
            report.links_checked += 1
            broken = check_link(ctx, root, path, target, params.check_anchors, anchors_for)
            if broken:
                reason, detail = broken
                report.broken.append(BrokenLink(rel_file, line, raw, reason, detail))
        ctx.progress(10 + (85 * (index + 1)) // max(len(files), 1), f"checked {rel_file}")
    return report


def _kind(ctx: Context, path: str) -> Optional[str]:
    """'file', 'dir' or 'other' (symlinks followed inside the grant); None when missing or refused."""
    try:
        mode = ctx.fs.stat(path, follow=True).st_mode
    except FsError:
        return None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def check_link(ctx: Context, root: str, source: str, target: str, check_anchors: bool, anchors_for) -> Optional[tuple]:
    """None when the link resolves; else (reason, detail)."""
    path_part, _, fragment = target.partition("#")
    path_part = urllib.parse.unquote(path_part.split("?", 1)[0])
    fragment = urllib.parse.unquote(fragment)
    if path_part == "":
        resolved = source
    elif path_part.startswith("/"):
        resolved = posixpath.normpath(posixpath.join(root, path_part.lstrip("/")))
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path_part))
    if resolved != root and not resolved.startswith(root + "/"):
        return ("outside-repository", f"{target} leaves the repository")
    kind = _kind(ctx, resolved)
    if kind is None:
        return ("missing-file", f"{posixpath.relpath(resolved, root)} does not exist")
    if fragment and check_anchors and kind == "file" and resolved.lower().endswith(MARKDOWN_EXTENSIONS):
        if fragment not in anchors_for(resolved) and fragment.lower() not in anchors_for(resolved):
            return ("missing-anchor", f"#{fragment} is not a heading or anchor in {posixpath.relpath(resolved, root)}")
    return None
