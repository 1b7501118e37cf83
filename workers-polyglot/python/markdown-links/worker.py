"""The markdown-links worker on the Python SDK: parameters (a dataclass whose JSON Schema the SDK
derives), then the check in links.py, then the report in the job's output folder. app.py exports it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import List

from alephauto_guest import Context, JobError, Worker, param

import links


@dataclass
class Params:
    """markdown-links parameters"""

    repository_path: str = param(path="read", description="Folder whose Markdown files are checked (read only).")
    check_anchors: bool = param(True, description="Check #fragments against the target file's headings and ids.")
    skip_dirs: List[str] = param(
        default_factory=lambda: list(links.DEFAULT_SKIP_DIRS),
        description="Folder names never entered (default .git, node_modules, target, vendor, .venv, __pycache__).",
    )
    gitignore: bool = param(True, description="Skip files that .gitignore, .ignore or .git/info/exclude ignore.")
    max_files: int = param(5000, minimum=1, maximum=100000,
                           description="Stop after this many Markdown files (the result says truncated).")


class MarkdownLinks(Worker):
    id = "markdown-links"
    version = "0.2.0"
    name = "Markdown links"
    description = (
        "Checks the relative links and images in a repository's Markdown files: that each target file "
        "or folder exists inside the repository and that each #anchor names a heading or id of the "
        "target document. External links are counted, not fetched. Honours .gitignore. Writes "
        "markdown-links.json to the job's output folder."
    )
    Params = Params

    def run(self, ctx: Context, params: Params) -> dict:
        links.check_options(params.skip_dirs)
        root = params.repository_path
        if not ctx.fs.is_dir(root):
            raise JobError.invalid("repositoryPath", f"{root} is not a folder")
        ctx.log.info("markdown-links: scanning", repositoryPath=root)
        ctx.progress(0, "listing Markdown files")
        report = links.check_repository(ctx, root, params)
        result = report.to_json()
        if ctx.output_dir:
            ctx.fs.write(ctx.output_path("markdown-links.json"), json.dumps(result, indent=2))
        for b in report.broken[:50]:
            ctx.log.warn(f"broken link in {b.file}:{b.line}: {b.link}", reason=b.reason)
        ctx.log.info("markdown-links: done", files=report.files_scanned, links=report.links_checked,
                     broken=len(report.broken))
        ctx.progress(100, f"{report.links_checked} links checked, {len(report.broken)} broken")
        return result
