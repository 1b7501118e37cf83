"""Native tests of worker logic (``python3 -m unittest``): a fake host that records logs and
progress and answers git queries from a table; files are real and confined to the job's grants
like in the sandbox (``ctx.fs``).

    out = run_worker(MyWorker, {"repositoryPath": root}, grants=[root])
    self.assertTrue(out.ok); self.assertEqual(out.result["files"], 3)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .context import Context, Job
from .errors import GitError, JobError
from .fs import Grant
from .git import Git
from .worker import Worker, init_worker, run_job


class _FakeGitImports:
    """Answers from a table ``{"current_branch": fn, ...}``; a missing entry fails like git would."""

    def __init__(self, table: Dict[str, Callable[..., Any]]):
        self._table = table

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        fn = self._table.get(name)
        if fn is None:

            def missing(*_: Any) -> Any:
                raise GitError("failed", f"the test's fake git has no {name}")

            return missing
        return fn


@dataclass
class FakeHost:
    """Records what the worker reports. ``cancel_after``: the n-th ``cancelled()`` call and later answer True."""

    git_table: Dict[str, Callable[..., Any]] = field(default_factory=dict)
    cancel_after: Optional[int] = None
    executable: Dict[str, bool] = field(default_factory=dict)
    logs: List[dict] = field(default_factory=list)
    reports: List[tuple] = field(default_factory=list)
    cancel_calls: int = 0

    def __post_init__(self) -> None:
        self.git = Git(_FakeGitImports(self.git_table))

    def log(self, level: str, message: str, fields: str) -> None:
        self.logs.append({"level": level, "message": message, "fields": json.loads(fields)})

    def progress(self, percent: int, message: str) -> None:
        self.reports.append((percent, message))

    def cancelled(self) -> bool:
        self.cancel_calls += 1
        return self.cancel_after is not None and self.cancel_calls >= self.cancel_after

    def file_executable(self, path: str) -> bool:
        if path not in self.executable:
            raise OSError(f"file-executable {path}: not a granted file")
        return self.executable[path]


GrantSpec = Union[str, Grant]


def _grants(grants: Sequence[GrantSpec], output_dir: str) -> List[Grant]:
    out = [g if isinstance(g, Grant) else Grant("/path", g, False) for g in grants]
    if output_dir:
        out.append(Grant("output", output_dir, True))
    return out


def make_job(params: Any = None, grants: Sequence[GrantSpec] = (), output_dir: str = "", job_id: str = "test-job-1",
             attempt: int = 1) -> Job:
    """A job record like the host's."""
    text = params if isinstance(params, str) else json.dumps(params or {})
    return Job(job_id, "test", attempt, text, output_dir, _grants(grants, output_dir))


def test_context(grants: Sequence[GrantSpec] = (), output_dir: str = "", git: Optional[Dict[str, Callable[..., Any]]] = None,
                 cancel_after: Optional[int] = None):
    """``(ctx, host)``: a Context over a fake host, for testing functions that take ``ctx``."""
    host = FakeHost(git_table=git or {}, cancel_after=cancel_after)
    return Context(make_job({}, grants, output_dir), host), host


@dataclass
class Outcome:
    """What ``run_worker`` saw: ``ok``, ``result`` (decoded) or ``error`` (JobError), logs and progress."""

    ok: bool
    result: Any
    error: Optional[JobError]
    logs: List[dict]
    progress: List[tuple]
    info: dict


def run_worker(worker_cls: type, params: Any = None, grants: Sequence[GrantSpec] = (), output_dir: str = "",
               git: Optional[Dict[str, Callable[..., Any]]] = None, cancel_after: Optional[int] = None,
               config: Any = None, attempt: int = 1) -> Outcome:
    """Runs a Worker subclass the way the component does (parameters parsed against its schema,
    errors mapped to ``job-error``)."""
    if not (isinstance(worker_cls, type) and issubclass(worker_cls, Worker)):
        raise TypeError("run_worker() takes a subclass of alephauto_guest.Worker")
    info = worker_cls.info()
    worker = worker_cls()
    error = init_worker(worker, "" if config is None else json.dumps(config))
    if error is not None:
        raise AssertionError(f"init failed: {error}")
    host = FakeHost(git_table=git or {}, cancel_after=cancel_after)
    ok, outcome = run_job(worker, make_job(params, grants, output_dir, attempt=attempt), host)
    return Outcome(ok, json.loads(outcome) if ok else None, None if ok else outcome, host.logs, host.reports, info)  # type: ignore[arg-type]
