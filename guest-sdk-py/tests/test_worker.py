"""Parameters, the worker adapter and error mapping, run through the native harness."""

import json
import unittest
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Literal, Optional

from alephauto_guest import GitError, GitWorkflow, JobError, Worker, param, parse, schema_of
from alephauto_guest.testing import run_worker


@dataclass
class Repo:
    path: str = param(path="read")
    branch: Optional[str] = param(None)


@dataclass
class Params:
    """Test parameters."""

    target: str = param(path="write", description="Where.")
    dry_run: bool = param(True)
    level: int = param(3, minimum=1, maximum=5)
    names: List[str] = param(default_factory=list, max_items=2)
    repos: Optional[List[Repo]] = param(None)
    mode: Optional[Literal["fast", "slow"]] = param(None)
    extra: List[str] = param(default_factory=list, items_path="read")


class ParamsTest(unittest.TestCase):
    def test_schema_is_closed_annotated_with_defaults(self):
        s = schema_of(Params)
        self.assertEqual(s["$schema"], "https://json-schema.org/draft/2020-12/schema")
        self.assertEqual(s["additionalProperties"], False)
        self.assertEqual(s["required"], ["target"])
        self.assertEqual(s["description"], "Test parameters.")
        self.assertEqual(s["properties"]["target"]["x-alephauto-path"], "write")
        self.assertEqual(s["properties"]["dryRun"], {"type": "boolean", "default": True})
        self.assertEqual(s["properties"]["level"], {"type": "integer", "minimum": 1, "maximum": 5, "default": 3})
        self.assertEqual(s["properties"]["repos"]["items"]["properties"]["path"]["x-alephauto-path"], "read")
        self.assertEqual(s["properties"]["repos"]["items"]["required"], ["path"])
        self.assertEqual(s["properties"]["mode"], {"enum": ["fast", "slow"]})
        self.assertEqual(s["properties"]["extra"]["items"], {"type": "string", "x-alephauto-path": "read"})
        with self.assertRaises(TypeError):
            param(path="exec")

    def test_parse_applies_defaults_and_names_the_field(self):
        p = parse(Params, '{"target": "/t", "repos": [{"path": "/r"}]}')
        self.assertEqual((p.target, p.dry_run, p.level, p.names, p.mode), ("/t", True, 3, [], None))
        self.assertEqual(p.repos, [Repo("/r", None)])

        def field(value):
            with self.assertRaises(JobError) as cm:
                parse(Params, value)
            self.assertEqual(cm.exception.kind, "invalid-input")
            return cm.exception.field

        self.assertEqual(field({}), "target")
        self.assertEqual(field({"target": "/t", "bogus": 1}), "bogus")
        self.assertEqual(field({"target": "/t", "dryRun": "no"}), "dryRun")
        self.assertEqual(field({"target": "/t", "level": 9}), "level")
        self.assertEqual(field({"target": "/t", "level": True}), "level")
        self.assertEqual(field({"target": "/t", "names": ["a", 3]}), "names/1")
        self.assertEqual(field({"target": "/t", "names": ["a", "b", "c"]}), "names")
        self.assertEqual(field({"target": "/t", "repos": [{"path": "/a"}, {"path": 3}]}), "repos/1/path")
        self.assertEqual(field({"target": "/t", "repos": [{"path": "/a", "x": 1}]}), "repos/0/x")
        self.assertEqual(field({"target": "/t", "mode": "medium"}), "mode")
        self.assertEqual(field("[]"), "params")
        self.assertEqual(field("{not json"), "params")


def make(run, **attrs):
    body = {"id": "w", "version": "1.0.0", "name": "W", "description": "A test worker.", "Params": Params,
            "run": lambda self, ctx, p: run(ctx, p), **attrs}
    return type("TestWorker", (Worker,), body)


class WorkerTest(unittest.TestCase):
    def test_result_progress_logs_and_info(self):
        def run(ctx, p):
            ctx.progress(140, "clamped")
            ctx.progress(49.6, "rounded")
            ctx.log.info("hello", target=p.target)
            return {"target": p.target, "attempt": ctx.job.attempt, "grants": len(ctx.job.grants)}

        w = make(run, git_workflow=GitWorkflow("docs", "docs: update"))
        out = run_worker(w, {"target": "/tmp"}, grants=["/tmp"], attempt=2)
        self.assertTrue(out.ok)
        self.assertEqual(out.result, {"target": "/tmp", "attempt": 2, "grants": 1})
        self.assertEqual(out.progress, [(100, "clamped"), (50, "rounded")])
        self.assertEqual(out.logs, [{"level": "info", "message": "hello", "fields": {"target": "/tmp"}}])
        self.assertEqual(json.loads(out.info["params_schema"])["properties"]["target"]["x-alephauto-path"], "write")
        self.assertEqual(out.info["git_workflow"], GitWorkflow("docs", "docs: update"))

    def test_errors_map_onto_the_contract_and_are_logged_once(self):
        def timeout(*_):
            raise GitError("timeout", "git took too long")

        def raise_(e):
            raise e

        cases = [
            (lambda ctx, p: raise_(JobError.invalid("target", "not a folder")),
             JobError.invalid("target", "not a folder")),
            (lambda ctx, p: raise_(JobError.retryable("busy")), JobError.retryable("busy")),
            (lambda ctx, p: raise_(KeyError("k")), JobError.failed("KeyError: 'k'")),
            (lambda ctx, p: ctx.git.log("/tmp", 0, datetime.now(timezone.utc)), JobError.retryable("git timeout: git took too long")),
            (lambda ctx, p: ctx.git.current_branch("/tmp"), JobError.failed("git failed: the test's fake git has no current_branch")),
            (lambda ctx, p: {1, 2}, JobError.failed("TypeError: Object of type set is not JSON serializable")),
        ]
        for run, expected in cases:
            out = run_worker(make(run), {"target": "/tmp"}, git={"log": timeout})
            self.assertEqual(out.error, expected)
            self.assertEqual(len([l for l in out.logs if l["level"] == "error"]), 1)
        out = run_worker(make(lambda ctx, p: self.fail("run must not be called")), {"target": "/tmp", "level": 0})
        self.assertEqual(out.error, JobError.invalid("level", "must be at least 1"))

    def test_git_answers_are_plain_values(self):
        class C:
            sha, author_name, author_email, timestamp, subject = "abc", "A", "a@x", 5, "s"
            files = [type("F", (), {"path": "f", "added": 1, "deleted": None})()]

        def run(ctx, p):
            commits = ctx.git.log("/r", 0, 10)
            try:
                ctx.git.status("/elsewhere")
            except GitError as e:
                denied = e.kind
            return {"sha": commits[0].sha, "added": commits[0].files[0].added, "remote": ctx.git.remote_url("/r"), "denied": denied}

        def status(_):
            raise GitError("denied", "/elsewhere is not granted")

        out = run_worker(make(run), {"target": "/tmp"},
                         git={"log": lambda r, s, u: [C()], "remote_url": lambda r, n: None, "status": status})
        self.assertEqual(out.result, {"sha": "abc", "added": 1, "remote": None, "denied": "denied"})

    def test_cancellation_stops_at_the_next_check(self):
        seen = []

        def run(ctx, p):
            for i in range(10):
                ctx.check_cancelled()
                seen.append(i)

        out = run_worker(make(run), {"target": "/tmp"}, cancel_after=4)
        self.assertEqual(out.error, JobError.failed("job cancelled"))
        self.assertEqual(len(seen), 3)

    def test_init_sees_the_configuration(self):
        def init(self, config):
            if config and config.get("bad"):
                raise ValueError("bad setting")

        w = make(lambda ctx, p: 1, init=init)
        with self.assertRaisesRegex(AssertionError, "init failed: bad setting"):
            run_worker(w, {"target": "/t"}, config={"bad": True})
        self.assertEqual(run_worker(w, {"target": "/t"}, config={"bad": False}).result, 1)


if __name__ == "__main__":
    unittest.main()
