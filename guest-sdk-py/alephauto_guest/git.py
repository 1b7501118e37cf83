"""Read-only git queries on granted repositories (``ctx.git``), with plain Python values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, List, Optional, Union

from .errors import GitError


@dataclass(frozen=True)
class StatusEntry:
    """One path in ``git status --porcelain``."""

    code: str
    path: str


@dataclass(frozen=True)
class FileChange:
    """Lines changed in one file by a commit; None for binary files."""

    path: str
    added: Optional[int]
    deleted: Optional[int]


@dataclass(frozen=True)
class Commit:
    """One commit from ``log``."""

    sha: str
    author_name: str
    author_email: str
    timestamp: int
    subject: str
    files: List[FileChange]


def _kind(variant: Any) -> str:
    # componentize-py names variant cases `GitError_NotARepository`; the WIT tag is `not-a-repository`.
    name = type(variant).__name__.split("_", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _seconds(t: Union[int, float, datetime]) -> int:
    return int(t.timestamp()) if isinstance(t, datetime) else int(t)


class Git:
    """Typed wrapper over the WIT ``git`` interface; every method raises ``GitError`` on failure."""

    def __init__(self, imports: Any, err_type: Optional[type] = None):
        self._imports = imports
        self._err_type = err_type

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._imports, name)(*args)
        except GitError:
            raise
        except Exception as e:  # componentize-py raises Err(variant) for an import's error result
            if self._err_type is not None and isinstance(e, self._err_type):
                variant = e.value  # type: ignore[attr-defined]
                raise GitError(_kind(variant), str(getattr(variant, "value", variant))) from None
            raise

    def current_branch(self, repo: str) -> str:
        """Name of the checked-out branch (``HEAD`` when detached)."""
        return self._call("current_branch", repo)

    def status(self, repo: str) -> List[StatusEntry]:
        """Work-tree status."""
        return [StatusEntry(s.code, s.path) for s in self._call("status", repo)]

    def log(self, repo: str, since: Union[int, float, datetime], until: Union[int, float, datetime]) -> List[Commit]:
        """Commits over all branches with author time in [since, until), newest first."""
        return [
            Commit(c.sha, c.author_name, c.author_email, int(c.timestamp), c.subject,
                   [FileChange(f.path, f.added, f.deleted) for f in c.files])
            for c in self._call("log", repo, _seconds(since), _seconds(until))
        ]

    def tracked_files(self, repo: str) -> List[str]:
        """Paths tracked in the index, relative to the repository root."""
        return list(self._call("tracked_files", repo))

    def remote_url(self, repo: str, remote: str = "origin") -> Optional[str]:
        """URL of a remote, None when it is not set."""
        return self._call("remote_url", repo, remote)

    def toplevel(self, path: str) -> str:
        """Top of the work tree that contains ``path``."""
        return self._call("toplevel", path)
