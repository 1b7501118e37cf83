"""``.gitignore`` rules (gitignore(5)): comments, ``!`` negation, trailing ``/`` for folders only,
anchoring by an inner or leading ``/``, ``*``, ``?``, ``[...]``, and ``**`` in its three forms.
The unit tests compare the walk with ``git ls-files --others --exclude-standard``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Pattern, Tuple


@dataclass
class Rule:
    """One compiled pattern."""

    source: str
    regex: Pattern[str]
    negated: bool
    dir_only: bool


def _class_end(glob: str, start: int) -> int:
    j = start + 1
    if j < len(glob) and glob[j] in "!^":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    while j < len(glob):
        if glob[j] == "\\":
            j += 1
        elif glob[j] == "]":
            return j
        j += 1
    return -1


def _glob_to_regex(glob: str) -> str:
    out = []
    i = 0
    n = len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if i + 1 < n and glob[i + 1] == "*":
                starts = i == 0 or glob[i - 1] == "/"
                ends = i + 2 == n or glob[i + 2] == "/"
                if starts and ends:
                    if i + 2 == n:
                        out.append(".*")  # `foo/**`: everything inside
                    else:
                        out.append("(?:.*/)?")  # `**/` and `/**/`: zero or more folders
                        i += 1
                    i += 2
                    continue
                while i + 1 < n and glob[i + 1] == "*":  # other runs of asterisks are one asterisk
                    i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = _class_end(glob, i)
            if end < 0:
                out.append("\\[")
            else:
                body = glob[i + 1 : end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = re.sub(r"\\(.)", r"\1", body)
                body = body.replace("\\", "\\\\").replace("]", "\\]").replace("^", "\\^").replace("[", "\\[")
                out.append(f"[^/{body}]" if negate else f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_line(line: str) -> Optional[Rule]:
    """Compiles one line; None for blanks and comments."""
    text = line[:-1] if line.endswith("\r") else line
    text = re.sub(r"(?<!\\)[ \t]+$", "", text)  # trailing spaces unless escaped
    if text.endswith("\\ "):
        text = text[:-2] + " "
    if not text or text.startswith("#"):
        return None
    negated = False
    if text.startswith("!"):
        negated = True
        text = text[1:]
    elif text.startswith("\\!") or text.startswith("\\#"):
        text = text[1:]
    dir_only = False
    if text.endswith("/") and not text.endswith("\\/"):
        dir_only = True
        text = text.rstrip("/")
    if not text:
        return None
    anchored = "/" in text
    if text.startswith("/"):
        text = text[1:]
    body = _glob_to_regex(text)
    regex = re.compile(f"^{body}$" if anchored else f"^(?:.*/)?{body}$", re.DOTALL)
    return Rule(line, regex, negated, dir_only)


class IgnoreFile:
    """The rules of one ignore file, relative to the folder it lives in."""

    def __init__(self, text: str):
        self.rules: List[Rule] = [r for r in (compile_line(l) for l in text.split("\n")) if r is not None]

    def decide(self, relative: str, is_dir: bool) -> Optional[bool]:
        """True ignored, False re-included by a ``!`` rule, None when no rule matches."""
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(relative):
                return not rule.negated
        return None


class IgnoreStack:
    """Layered rules for a walk: deeper files win over shallower ones, later lines over earlier ones."""

    def __init__(self) -> None:
        self.layers: List[Tuple[str, IgnoreFile]] = []

    def add(self, base: str, text: str) -> None:
        """Adds the rules of a file in folder ``base`` ('' for the root)."""
        f = IgnoreFile(text)
        if f.rules:
            self.layers.append((base, f))

    def ignored(self, relative: str, is_dir: bool) -> bool:
        """True when ``relative`` (``/``-separated, from the walk root) is ignored."""
        for base, f in reversed(self.layers):
            if base and not relative.startswith(base + "/"):
                continue
            decision = f.decide(relative[len(base) + 1 :] if base else relative, is_dir)
            if decision is not None:
                return decision
        return False
