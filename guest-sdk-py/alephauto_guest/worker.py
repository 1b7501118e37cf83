"""``Worker``: a pipeline worker as a Python class, and ``run_job``, the one place that turns a job
into a ``run(ctx, params)`` call and its outcome into the contract's result or ``job-error``
(shared by the component export and the native test harness).

    class MarkdownLinks(Worker):
        id = "markdown-links"
        version = "0.1.0"
        name = "Markdown links"
        description = "Checks relative links."
        Params = Params                      # a dataclass, see alephauto_guest.params

        def run(self, ctx: Context, params: Params) -> dict:
            ...
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Tuple, Union

from .context import Context, Job
from .errors import JobError, to_job_error
from .params import parse, schema_of


@dataclass(frozen=True)
class GitWorkflow:
    """Host-side git workflow around the job (branch, commit, push, pull request)."""

    branch_prefix: str
    commit_title: str


class Worker:
    """Subclass it: set ``id``, ``version``, ``name``, ``description``, ``Params`` and define ``run``."""

    id: ClassVar[str]
    version: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type]
    git_workflow: ClassVar[Optional[GitWorkflow]] = None

    def init(self, config: Any) -> None:
        """Called once with the pipeline's configuration (decoded JSON, None when empty); raise to refuse it."""

    def run(self, ctx: Context, params: Any) -> Any:
        """Runs one job; returns the job's result (JSON-serialisable)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Called once when the runtime stops the worker."""

    @classmethod
    def info(cls) -> dict:
        """id, version, name, description, the parameter schema (JSON text) and the git workflow."""
        for k in ("id", "version", "name", "description"):
            if not isinstance(getattr(cls, k, None), str) or not getattr(cls, k).strip():
                raise TypeError(f"{cls.__name__}.{k} must be a non-empty string")
        return {
            "id": cls.id,
            "version": cls.version,
            "name": cls.name,
            "description": cls.description,
            "params_schema": json.dumps(schema_of(cls.Params)),
            "git_workflow": cls.git_workflow,
        }


def init_worker(worker: Worker, config: str) -> Optional[str]:
    """Runs ``init``; the error message, or None."""
    decoded = None
    if config and config.strip():
        try:
            decoded = json.loads(config)
        except ValueError as e:
            return f"pipeline configuration is not JSON: {e}"
    try:
        worker.init(decoded)
        return None
    except Exception as e:  # any refusal becomes init's error string
        return str(e) or type(e).__name__


def run_job(worker: Worker, job: Job, host: Any) -> Tuple[bool, Union[str, JobError]]:
    """``(True, result JSON)`` or ``(False, JobError)``; each failure is logged once at error level, never raised."""
    ctx = Context(job, host)
    try:
        params = parse(type(worker).Params, job.params)
        result = worker.run(ctx, params)
        return True, json.dumps(result)
    except BaseException as e:  # an exception escaping an export would trap the instance
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        err = to_job_error(e)
        fields = {"field": err.field, "message": err.message} if err.kind == "invalid-input" else {"error": err.message}
        if not isinstance(e, JobError):
            fields["traceback"] = traceback.format_exc(limit=8)
        ctx.log.error(str(err), **fields)
        return False, err
