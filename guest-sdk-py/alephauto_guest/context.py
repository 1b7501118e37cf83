"""``Context``: the running job and what a worker may ask of the host (progress, logs,
cancellation, files, git). Worker logic takes a context, so native tests hand it one built
over the fake host of ``alephauto_guest.testing``."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any, List, Optional

from .errors import JobError
from .fs import Files, Grant
from .git import Git

LEVELS = ("trace", "debug", "info", "warn", "error")


@dataclass(frozen=True)
class Job:
    """The job being run."""

    id: str
    pipeline_id: str
    attempt: int
    params: str
    output_dir: str
    grants: List[Grant]


class Log:
    """Structured logging into the job's log (``GET /api/jobs/{id}/logs``)."""

    def __init__(self, host: Any):
        self._host = host

    def write(self, level: str, message: str, /, **fields: Any) -> None:
        """Logs ``message`` at ``level`` with keyword fields."""
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
        self._host.log(level, str(message), json.dumps(fields, default=str))

    def trace(self, message: str, /, **fields: Any) -> None:
        """Very fine detail."""
        self.write("trace", message, **fields)

    def debug(self, message: str, /, **fields: Any) -> None:
        """Debugging detail."""
        self.write("debug", message, **fields)

    def info(self, message: str, /, **fields: Any) -> None:
        """Normal operation."""
        self.write("info", message, **fields)

    def warn(self, message: str, /, **fields: Any) -> None:
        """Something odd that the job survived."""
        self.write("warn", message, **fields)

    def error(self, message: str, /, **fields: Any) -> None:
        """Something failed."""
        self.write("error", message, **fields)


class Context:
    """The job being run and the host calls available to it."""

    def __init__(self, job: Job, host: Any):
        self.job = job
        self._host = host
        #: Structured logging: ``ctx.log.info("message", field=value)``.
        self.log = Log(host)
        #: Files in the granted folders: ``ctx.fs.read_text(path)``, ``ctx.fs.walk(root)``...
        self.fs = Files(job.grants)
        #: Read-only git queries on granted repositories.
        self.git: Git = host.git

    @property
    def output_dir(self) -> str:
        """The job's own read-write folder for reports ('' when the schema declined it)."""
        return self.job.output_dir

    def output_path(self, name: str) -> str:
        """A path inside the output folder; JobError when the job has none."""
        if not self.job.output_dir:
            raise JobError.failed('this job has no output folder (the schema declared "x-alephauto-output": false)')
        return posixpath.normpath(posixpath.join(self.job.output_dir, name))

    def progress(self, percent: float, message: str = "") -> None:
        """Reports progress (0-100, rounded and clamped) and what is happening now."""
        self._host.progress(max(0, min(100, int(round(percent)))), str(message))

    def cancelled(self) -> bool:
        """True once the job was cancelled."""
        return bool(self._host.cancelled())

    def check_cancelled(self) -> None:
        """Raises the cancellation JobError once the job was cancelled, so long loops can stop."""
        if self.cancelled():
            raise JobError.cancelled()

    def file_executable(self, path: str) -> bool:
        """Whether a granted file has an executable bit (WASI does not expose modes)."""
        return self._host.file_executable(path)


def grants_of(grants: Optional[list]) -> List[Grant]:
    """Grants from ``(param, path, writable)`` triples or Grant values."""
    return [g if isinstance(g, Grant) else Grant(*g) for g in grants or []]
