"""Errors a worker raises, and how each becomes the contract's ``job-error`` variant."""

from __future__ import annotations

from typing import Optional


class JobError(Exception):
    """Why a job did not succeed; mirrors the WIT ``job-error`` variant (``kind`` is its tag)."""

    def __init__(self, kind: str, message: str, field: Optional[str] = None):
        super().__init__(message if field is None else f"{field}: {message}")
        self.kind = kind
        self.message = message
        self.field = field

    @staticmethod
    def invalid(field: str, message: str) -> "JobError":
        """A parameter the worker refuses; retrying cannot help."""
        return JobError("invalid-input", message, field)

    @staticmethod
    def failed(message: str) -> "JobError":
        """A failure that retrying will not fix."""
        return JobError("failed", message)

    @staticmethod
    def retryable(message: str) -> "JobError":
        """A failure that may pass on a later attempt (the host retries with backoff)."""
        return JobError("retryable", message)

    @staticmethod
    def cancelled() -> "JobError":
        """The job stopped because the host cancelled it."""
        return JobError("failed", "job cancelled")

    def as_variant(self) -> dict:
        """``{"tag": ..., "val": ...}``, the shape the tests and the JS SDK use."""
        if self.kind == "invalid-input":
            return {"tag": self.kind, "val": {"field": self.field, "message": self.message}}
        return {"tag": self.kind, "val": self.message}

    def __eq__(self, other) -> bool:
        return isinstance(other, JobError) and (self.kind, self.message, self.field) == (other.kind, other.message, other.field)

    def __hash__(self) -> int:
        return hash((self.kind, self.message, self.field))

    def __repr__(self) -> str:
        return f"JobError({self.kind!r}, {self.message!r}, field={self.field!r})"


_DENIED = {"not-granted", "not-permitted", "access", "read-only"}
_DESCRIBE = {
    "not-granted": "outside the folders this job was granted",
    "not-permitted": "access denied by the sandbox",
    "access": "access denied by the sandbox",
    "read-only": "the grant is read-only",
    "no-entry": "no such file or folder",
    "not-directory": "not a folder",
    "is-directory": "is a folder",
    "exist": "already exists",
    "insufficient-memory": "too many open files (the job's descriptor cap) or out of memory",
}


class FsError(OSError):
    """A file operation failed; ``code`` is a WASI error code (``no-entry``, ``not-permitted``...) or ``not-granted``."""

    def __init__(self, code: str, op: str, path: str):
        super().__init__(f"{op} {path}: {_DESCRIBE.get(code, code)}")
        self.code = code
        self.op = op
        self.path = path

    @property
    def denied(self) -> bool:
        """True when the sandbox refused the access (outside the grants, read-only, symlink escape)."""
        return self.code in _DENIED

    @property
    def not_found(self) -> bool:
        """True when the path does not exist."""
        return self.code == "no-entry"


class GitError(Exception):
    """A git query failed; ``kind`` is the WIT ``git-error`` tag (``denied``, ``not-a-repository``, ``timeout``...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"git {kind}: {message}")
        self.kind = kind
        self.message = message


def to_job_error(err: BaseException) -> JobError:
    """Any exception as a JobError: git timeouts are retryable, everything else unexpected fails."""
    if isinstance(err, JobError):
        return err
    if isinstance(err, GitError):
        return JobError.retryable(str(err)) if err.kind == "timeout" else JobError.failed(str(err))
    if isinstance(err, FsError):
        return JobError.failed(str(err))
    if isinstance(err, InterruptedError):
        return JobError.cancelled()
    return JobError.failed(f"{type(err).__name__}: {err}")
