"""alephauto_guest: write AlephAuto pipeline workers in Python (componentize-py).

    from dataclasses import dataclass
    from alephauto_guest import Worker, Context, JobError, param

    @dataclass
    class Params:
        source_dir: str = param(path="read", description="Folder to scan.")

    class LineCounter(Worker):
        id, version, name, description = "line-counter", "0.1.0", "Line counter", "Counts lines."
        Params = Params

        def run(self, ctx: Context, params: Params) -> dict:
            ...

The component entry (app.py) exports it with ``alephauto_guest.component.export``; native tests
run it with ``alephauto_guest.testing.run_worker``.
"""

from .context import Context, Job, Log
from .errors import FsError, GitError, JobError, to_job_error
from .fs import Entry, Files, Grant, looks_binary, normalize, relative
from .git import Commit, FileChange, Git, StatusEntry
from .gitignore import IgnoreFile, IgnoreStack
from .params import param, parse, schema_of
from .worker import GitWorkflow, Worker

__all__ = [
    "Commit", "Context", "Entry", "FileChange", "Files", "FsError", "Git", "GitError", "GitWorkflow", "Grant",
    "IgnoreFile", "IgnoreStack", "Job", "JobError", "Log", "StatusEntry", "Worker", "looks_binary", "normalize",
    "param", "parse", "relative", "schema_of", "to_job_error",
]
