"""markdown-links: checks the relative links in a repository's Markdown files.

Pure logic over plain paths (no WIT imports), so `python3 -m unittest` runs it natively;
app.py wires it to the AlephAuto host. For each inline link, image and reference
definition it resolves the target against the linking file (or the repository root for
`/abs` targets), checks that the file or folder exists inside the repository, and, for a
`#fragment` into a Markdown file, that a heading (GitHub slug rules) or an explicit
`id`/`name` anchor with that name exists. External links (`https:`, `mailto:`, `//host`)
are counted, never fetched: the sandbox has no sockets.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field, asdict
from typing import Callable, Dict, List, Optional, Set

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


class InvalidInput(Exception):
    """A parameter the worker refuses; app.py turns it into `invalid-input`."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass
class Options:
    check_anchors: bool = True
    skip_dirs: List[str] = field(default_factory=lambda: list(DEFAULT_SKIP_DIRS))
    max_files: int = 5000


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


def parse_options(params: dict) -> Options:
    """Semantic checks the JSON Schema cannot express; raises InvalidInput naming the field."""
    opts = Options()
    opts.check_anchors = bool(params.get("checkAnchors", True))
    skip = params.get("skipDirs")
    if skip is not None:
        for i, name in enumerate(skip):
            if not name or "/" in name or name in (".", ".."):
                raise InvalidInput(f"skipDirs/{i}", f"{name!r} must be a plain folder name such as node_modules")
        opts.skip_dirs = list(skip)
    opts.max_files = int(params.get("maxFiles", 5000))
    return opts


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


def markdown_files(root: str, opts: Options, report: Report) -> List[str]:
    """Markdown files under root, sorted, skipping opts.skip_dirs and hidden folders; symlinks are not followed."""
    found: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in opts.skip_dirs and not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(MARKDOWN_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
                if len(found) >= opts.max_files:
                    report.truncated = True
                    return found
    return found


def check_repository(
    root: str,
    opts: Options,
    progress: Callable[[int, str], None] = lambda pct, msg: None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Report:
    """Checks every relative link of every Markdown file under root."""
    root = os.path.normpath(root)
    report = Report(repository_path=root)
    files = markdown_files(root, opts, report)
    anchor_cache: Dict[str, Set[str]] = {}

    def anchors_for(path: str) -> Set[str]:
        if path not in anchor_cache:
            with open(path, encoding="utf-8", errors="replace") as fh:
                anchor_cache[path] = anchors_of(fh.read())
        return anchor_cache[path]

    progress(10, f"found {len(files)} Markdown files")
    for index, path in enumerate(files):
        if cancelled():
            raise InterruptedError("cancelled")
        rel_file = os.path.relpath(path, root)
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
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
            broken = check_link(root, path, target, opts, anchors_for)
            if broken:
                reason, detail = broken
                report.broken.append(BrokenLink(rel_file, line, raw, reason, detail))
        progress(10 + (85 * (index + 1)) // max(len(files), 1), f"checked {rel_file}")
    return report


def check_link(root: str, source: str, target: str, opts: Options, anchors_for) -> Optional[tuple]:
    """None when the link resolves; else (reason, detail)."""
    path_part, _, fragment = target.partition("#")
    path_part = urllib.parse.unquote(path_part.split("?", 1)[0])
    fragment = urllib.parse.unquote(fragment)
    if path_part == "":
        resolved = source
    elif path_part.startswith("/"):
        resolved = os.path.normpath(os.path.join(root, path_part.lstrip("/")))
    else:
        resolved = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
    if resolved != root and not resolved.startswith(root + os.sep):
        return ("outside-repository", f"{target} leaves the repository")
    if not os.path.exists(resolved):
        return ("missing-file", f"{os.path.relpath(resolved, root)} does not exist")
    if fragment and opts.check_anchors and os.path.isfile(resolved) and resolved.lower().endswith(MARKDOWN_EXTENSIONS):
        if fragment not in anchors_for(resolved) and fragment.lower() not in anchors_for(resolved):
            return ("missing-anchor", f"#{fragment} is not a heading or anchor in {os.path.relpath(resolved, root)}")
    return None
