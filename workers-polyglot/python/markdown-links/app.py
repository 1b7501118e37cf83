"""The markdown-links pipeline worker: a componentize-py guest for the `pipeline-worker`
world (../../../wit). The work is in links.py; this file maps it onto the WIT exports."""

import json
import os

from componentize_py_types import Err

from wit_world import exports
from wit_world.imports import host, types

import links

VERSION = "0.1.0"

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "markdown-links parameters",
    "type": "object",
    "additionalProperties": False,
    "required": ["repositoryPath"],
    "properties": {
        "repositoryPath": {
            "type": "string",
            "description": "Folder whose Markdown files are checked (read only).",
            "x-alephauto-path": "read",
        },
        "checkAnchors": {
            "type": "boolean",
            "default": True,
            "description": "Check #fragments against the target file's headings and ids.",
        },
        "skipDirs": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Folder names never entered (default .git, node_modules, target, vendor, .venv, __pycache__).",
        },
        "maxFiles": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100000,
            "default": 5000,
            "description": "Stop after this many Markdown files (the result says truncated).",
        },
    },
}


def invalid(field_name: str, message: str) -> Err:
    host.log(host.LogLevel.WARN, f"invalid parameter {field_name}", json.dumps({"field": field_name, "message": message}))
    return Err(types.JobError_InvalidInput(types.FieldError(field=field_name, message=message)))


class Worker(exports.Worker):
    def describe(self) -> types.WorkerInfo:
        return types.WorkerInfo(
            id="markdown-links",
            version=VERSION,
            name="Markdown links",
            description=(
                "Checks the relative links and images in a repository's Markdown files: that each target file "
                "or folder exists inside the repository and that each #anchor names a heading or id of the "
                "target document. External links are counted, not fetched. Writes markdown-links.json to the "
                "job's output folder."
            ),
            params_schema=json.dumps(SCHEMA),
            git_workflow=None,
        )

    def init(self, config: str) -> None:
        if config.strip():
            try:
                json.loads(config)
            except ValueError as e:
                raise Err(f"pipeline configuration is not JSON: {e}")

    def run(self, job: types.Job) -> str:
        try:
            params = json.loads(job.params)
            root = params["repositoryPath"]
            opts = links.parse_options(params)
            if not os.path.isdir(root):
                raise links.InvalidInput("repositoryPath", f"{root} is not a folder")
            host.log(host.LogLevel.INFO, "markdown-links: scanning", json.dumps({"repositoryPath": root}))
            host.progress(0, "listing Markdown files")
            report = links.check_repository(root, opts, progress=host.progress, cancelled=host.cancelled)
            result = report.to_json()
            with open(os.path.join(job.output_dir, "markdown-links.json"), "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=2)
            for b in report.broken[:50]:
                host.log(host.LogLevel.WARN, f"broken link in {b.file}:{b.line}: {b.link}", json.dumps({"reason": b.reason}))
            host.log(
                host.LogLevel.INFO,
                "markdown-links: done",
                json.dumps({"files": report.files_scanned, "links": report.links_checked, "broken": len(report.broken)}),
            )
            host.progress(100, f"{report.links_checked} links checked, {len(report.broken)} broken")
            return json.dumps(result)
        except links.InvalidInput as e:
            raise invalid(e.field, e.message)
        except InterruptedError:
            raise Err(types.JobError_Failed("cancelled"))
        except OSError as e:
            host.log(host.LogLevel.ERROR, "markdown-links: I/O error", json.dumps({"error": str(e)}))
            raise Err(types.JobError_Failed(f"I/O error: {e}"))
        except Err:
            raise
        except Exception as e:  # a Python exception escaping an export would trap the instance
            host.log(host.LogLevel.ERROR, "markdown-links failed", json.dumps({"error": repr(e)}))
            raise Err(types.JobError_Failed(f"{type(e).__name__}: {e}"))

    def shutdown(self) -> None:
        pass
