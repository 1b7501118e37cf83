"""The component side: binds the SDK to the WIT bindings componentize-py generates
(``wit_world``) and exports a ``Worker`` subclass as the ``worker`` interface. Only the
component entry imports this module:

    # app.py
    from alephauto_guest.component import export
    from my_worker import MyWorker

    Worker = export(MyWorker)
"""

from __future__ import annotations

from typing import Any

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import git, host, types

from .context import Job, grants_of
from .errors import JobError
from .git import Git
from .worker import Worker as SdkWorker, init_worker, run_job

_LEVELS = {
    "trace": host.LogLevel.TRACE,
    "debug": host.LogLevel.DEBUG,
    "info": host.LogLevel.INFO,
    "warn": host.LogLevel.WARN,
    "error": host.LogLevel.ERROR,
}


class _Host:
    """The host as the SDK sees it, over the WIT imports."""

    def __init__(self) -> None:
        self.git = Git(git, Err)

    def log(self, level: str, message: str, fields: str) -> None:
        host.log(_LEVELS[level], message, fields)

    def progress(self, percent: int, message: str) -> None:
        host.progress(percent, message)

    def cancelled(self) -> bool:
        return host.cancelled()

    def file_executable(self, path: str) -> bool:
        try:
            return host.file_executable(path)
        except Err as e:
            raise OSError(f"file-executable {path}: {e.value}") from None


def _variant(err: JobError) -> Any:
    if err.kind == "invalid-input":
        return types.JobError_InvalidInput(types.FieldError(field=err.field or "params", message=err.message))
    if err.kind == "retryable":
        return types.JobError_Retryable(err.message)
    return types.JobError_Failed(err.message)


def _job(job: Any) -> Job:
    grants = [(g.param, g.path, g.access == types.Access.READ_WRITE) for g in job.grants]
    return Job(job.id, job.pipeline_id, job.attempt, job.params, job.output_dir, grants_of(grants))


def export(worker_cls: type) -> type:
    """The ``exports.Worker`` class componentize-py instantiates, for an SDK ``Worker`` subclass."""
    if not (isinstance(worker_cls, type) and issubclass(worker_cls, SdkWorker)):
        raise TypeError("export() takes a subclass of alephauto_guest.Worker")
    instance = worker_cls()

    class Exported(exports.Worker):
        def describe(self) -> types.WorkerInfo:
            info = worker_cls.info()
            g = info["git_workflow"]
            return types.WorkerInfo(
                id=info["id"],
                version=info["version"],
                name=info["name"],
                description=info["description"],
                params_schema=info["params_schema"],
                git_workflow=types.GitWorkflow(branch_prefix=g.branch_prefix, commit_title=g.commit_title) if g else None,
            )

        def init(self, config: str) -> None:
            error = init_worker(instance, config)
            if error is not None:
                raise Err(error)

        def run(self, job: types.Job) -> str:
            ok, outcome = run_job(instance, _job(job), _Host())
            if ok:
                return outcome  # type: ignore[return-value]
            raise Err(_variant(outcome))  # type: ignore[arg-type]

        def shutdown(self) -> None:
            try:
                instance.shutdown()
            except Exception as e:  # a raise out of an export traps
                host.log(host.LogLevel.WARN, f"shutdown failed: {e}", "{}")

    Exported.__name__ = "Worker"
    return Exported
