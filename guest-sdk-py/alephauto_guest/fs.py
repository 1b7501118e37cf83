"""Files: read, write, list and walk the folders a job was granted (``ctx.fs``).

In a component CPython's own ``open`` and ``os`` work on the granted folders (the host preopens
each at its own absolute path, and refuses everything else). ``Files`` adds what the sandbox
would say in words: every path is checked against the job's grants first, so a path outside
them is a ``FsError`` with code ``not-granted`` natively too, a symlink leading out of a grant
is ``not-permitted``, and writing a read-only grant is ``not-permitted``. Native tests thus see
the same refusals the component does.
"""

from __future__ import annotations

import errno
import stat as stat_mode
import os
import posixpath
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence, Union

from .errors import FsError
from .gitignore import IgnoreStack

_ERRNO = {
    errno.ENOENT: "no-entry",
    errno.EACCES: "access",
    errno.EPERM: "not-permitted",
    errno.ENOTDIR: "not-directory",
    errno.EISDIR: "is-directory",
    errno.EEXIST: "exist",
    errno.ENOTEMPTY: "not-empty",
    errno.ELOOP: "loop",
    errno.EROFS: "read-only",
    errno.EMFILE: "insufficient-memory",
    errno.ENFILE: "insufficient-memory",
    errno.ENOMEM: "insufficient-memory",
}


def normalize(path: str) -> str:
    """Lexically normalises an absolute path (``.``, ``..``, repeated slashes); FsError for a relative one."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise FsError("not-granted", "resolve", str(path))
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/")


def relative(root: str, path: str) -> Optional[str]:
    """``path`` relative to ``root`` with ``/`` separators ('' for the root); None when outside it."""
    r, p = normalize(root), normalize(path)
    if p == r:
        return ""
    prefix = r if r == "/" else r + "/"
    return p[len(prefix) :] if p.startswith(prefix) else None


def looks_binary(data: bytes) -> bool:
    """True when the first 8 KiB hold a NUL byte (git's binary heuristic)."""
    return b"\0" in data[:8192]


@dataclass(frozen=True)
class Grant:
    """A folder preopened for the job."""

    param: str
    path: str
    writable: bool


@dataclass(frozen=True)
class Entry:
    """One path found by ``Files.walk``: kind is ``file``, ``dir``, ``symlink``, ``other`` or ``error``."""

    path: str
    relative: str
    depth: int
    kind: str
    error: Optional[FsError] = None


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return "other"


class Files:
    """File access confined to the job's grants. Paths are absolute, as the job's parameters give them."""

    def __init__(self, grants: Iterable[Grant]):
        self.grants = [Grant(g.param, normalize(os.path.realpath(g.path)), g.writable) for g in grants]

    def _grant(self, path: str) -> Optional[Grant]:
        best = None
        for g in self.grants:
            if relative(g.path, path) is not None and (best is None or len(g.path) > len(best.path)):
                best = g
        return best

    def confine(self, op: str, path: str, write: bool = False, follow: bool = False) -> str:
        """The normalised path once it is inside a grant (and, when followed, its target too)."""
        p = normalize(path)
        grant = self._grant(p)
        if grant is None:
            raise FsError("not-granted", op, p)
        if write and not grant.writable:
            raise FsError("not-permitted", op, p)
        if p != grant.path:
            real = os.path.realpath(p) if follow else os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
            if relative(grant.path, real) is None:
                raise FsError("not-permitted", op, p)
        return p

    def _os(self, op: str, path: str, f):
        try:
            return f()
        except FsError:
            raise
        except OSError as e:
            raise FsError(_ERRNO.get(e.errno or 0, "io"), op, path) from e

    def read_bytes(self, path: str) -> bytes:
        """The file's bytes (symlinks followed inside the grant)."""
        p = self.confine("read", path, follow=True)

        def read() -> bytes:
            with open(p, "rb") as fh:
                return fh.read()

        return self._os("read", p, read)

    def read_text(self, path: str, encoding: str = "utf-8", errors: str = "replace") -> str:
        """The file as text (invalid UTF-8 becomes U+FFFD by default)."""
        return self.read_bytes(path).decode(encoding, errors)

    def write(self, path: str, data: Union[str, bytes]) -> None:
        """Writes text (UTF-8) or bytes, creating or truncating the file."""
        p = self.confine("write", path, write=True)
        raw = data.encode("utf-8") if isinstance(data, str) else data

        def write() -> None:
            with open(p, "wb") as fh:
                fh.write(raw)

        self._os("write", p, write)

    def mkdir(self, path: str, recursive: bool = False) -> None:
        """Creates a folder; with ``recursive`` its missing parents too (an existing folder is fine)."""
        p = self.confine("mkdir", path, write=True)
        self._os("mkdir", p, lambda: os.makedirs(p, exist_ok=True) if recursive else os.mkdir(p))

    def remove_file(self, path: str) -> None:
        """Removes a file."""
        p = self.confine("remove", path, write=True)
        self._os("remove", p, lambda: os.unlink(p))

    def stat(self, path: str, follow: bool = False) -> os.stat_result:
        """``os.stat`` (``lstat`` unless ``follow``)."""
        p = self.confine("stat", path, follow=follow)
        return self._os("stat", p, lambda: os.stat(p, follow_symlinks=follow))

    def exists(self, path: str) -> bool:
        """True when the path exists (a dangling symlink exists)."""
        try:
            self.stat(path)
            return True
        except FsError as e:
            if e.not_found:
                return False
            raise

    def is_dir(self, path: str) -> bool:
        """True when the path is a folder (symlinks not followed)."""
        try:
            return stat_mode.S_ISDIR(self.stat(path).st_mode)
        except FsError as e:
            if e.code in ("no-entry", "not-directory"):
                return False
            raise

    def list(self, path: str) -> List[Entry]:
        """The folder's entries, sorted by name (depth 1, relative = name)."""
        p = self.confine("list", path)

        def scan() -> List[Entry]:
            with os.scandir(p) as it:
                items = [(e.name, _kind(e)) for e in it]
            return [Entry(posixpath.join(p, n), n, 1, k) for n, k in sorted(items)]

        return self._os("list", p, scan)

    def walk(
        self,
        root: str,
        gitignore: bool = True,
        include_hidden: bool = True,
        max_depth: Optional[int] = None,
        ignore: Sequence[str] = (),
        skip_dirs: Sequence[str] = (),
    ) -> Iterator[Entry]:
        """Walks ``root`` depth first, siblings sorted by name, yielding an ``Entry`` for everything
        below it (not the root). Never follows symlinks (yielded with kind ``symlink``), never enters
        ``.git``. A folder that cannot be read is yielded with kind ``error`` and the walk goes on.

        ``gitignore`` honours ``.gitignore``, ``.ignore`` and ``.git/info/exclude``; ``ignore`` adds
        patterns (``.gitignore`` syntax, relative to the root); ``skip_dirs`` names folders never entered."""
        top = normalize(root)
        stack = IgnoreStack()
        extra = IgnoreStack()
        if ignore:
            extra.add("", "\n".join(ignore))
        skip = set(skip_dirs)

        def load(folder: str, rel: str) -> None:
            if not gitignore:
                return
            names = [".git/info/exclude", ".gitignore", ".ignore"] if rel == "" else [".gitignore", ".ignore"]
            for name in names:
                try:
                    stack.add(rel, self.read_text(posixpath.join(folder, name)))
                except FsError:
                    continue  # absent or unreadable: no rules from it

        def visit(folder: str, rel: str, depth: int) -> Iterator[Entry]:
            try:
                entries = self.list(folder)
            except FsError as e:
                yield Entry(folder, rel, depth - 1, "error", e)
                return
            mark = len(stack.layers)
            load(folder, rel)
            for e in entries:
                name = e.relative
                if name == ".git" or (not include_hidden and name.startswith(".")):
                    continue
                child = name if rel == "" else f"{rel}/{name}"
                is_dir = e.kind == "dir"
                if is_dir and name in skip:
                    continue
                if extra.ignored(child, is_dir) or stack.ignored(child, is_dir):
                    continue
                yield Entry(e.path, child, depth, e.kind)
                if is_dir and (max_depth is None or depth < max_depth):
                    yield from visit(e.path, child, depth + 1)
            del stack.layers[mark:]

        yield from visit(top, "", 1)
