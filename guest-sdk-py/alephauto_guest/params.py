"""Typed parameters: a dataclass is the parameter type, its JSON Schema is derived from the
annotations (like ``schemars``), and ``parse`` builds it from the job's JSON, applying defaults
and naming the offending field (like ``serde``).

    @dataclass
    class Params:
        repository_path: str = param(path="read", description="Folder to scan.")
        max_files: int = param(5000, minimum=1, description="Stop after this many.")
        skip_dirs: List[str] = param(default_factory=list)
        since: Optional[str] = param(None)

Field names are snake_case in Python and camelCase in JSON (``repository_path`` is
``repositoryPath``). Objects are closed (``additionalProperties: false``). A field is required
unless it has a default; ``Optional[T]`` fields default to None. Types: str, int, float, bool,
List[T], Optional[T], Literal[...], and nested dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import sys
import typing
from typing import Any, Dict, List, Optional, Type, TypeVar, Union

from .errors import JobError

T = TypeVar("T")

_SCHEMA_KEYS = (
    "description", "title", "examples", "minimum", "maximum", "exclusive_minimum", "exclusive_maximum",
    "min_length", "max_length", "pattern", "min_items", "max_items", "unique_items", "enum",
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def param(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, path: Optional[str] = None,
          items_path: Optional[str] = None, **schema: Any) -> Any:
    """A dataclass field with schema details: ``path="read"|"write"`` marks a path the host grants
    (``items_path`` marks the items of a list of paths); other keywords (``description``, ``minimum``,
    ``max_length``, ``pattern``, ``enum``...) go into the schema, snake_case keys in camelCase."""
    for k in schema:
        if k not in _SCHEMA_KEYS:
            raise TypeError(f"param(): unknown schema keyword {k!r}")
    for p in (path, items_path):
        if p not in (None, "read", "write"):
            raise TypeError(f"param(): path must be 'read' or 'write', not {p!r}")
    meta = {"schema": schema, "path": path, "items_path": items_path}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def _optional_inner(tp: Any) -> Any:
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _type_schema(tp: Any) -> Dict[str, Any]:
    inner = _optional_inner(tp)
    if inner is not None:
        return _type_schema(inner)
    origin = typing.get_origin(tp)
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if origin in (list, List):
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": _type_schema(item)}
    if origin is typing.Literal:
        values = list(typing.get_args(tp))
        return {"enum": values}
    if dataclasses.is_dataclass(tp):
        return schema_of(tp, root=False)
    raise TypeError(f"unsupported parameter type {tp!r}")


def schema_of(cls: type, root: bool = True) -> Dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a parameter dataclass, fully inline."""
    return copy.deepcopy(_schema(cls, root))


@functools.lru_cache(maxsize=None)
def _schema(cls: type, root: bool) -> Dict[str, Any]:
    # Cached: derived once per class (every job parses against it); callers get a copy.
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = _hints(cls)
    props: Dict[str, Any] = {}
    required: List[str] = []
    for f in dataclasses.fields(cls):
        s = _type_schema(hints[f.name])
        meta = f.metadata or {}
        for k, v in (meta.get("schema") or {}).items():
            s[_camel(k)] = v
        if meta.get("path"):
            s["x-alephauto-path"] = meta["path"]
        if meta.get("items_path"):
            s["items"]["x-alephauto-path"] = meta["items_path"]
        if f.default is not dataclasses.MISSING:
            if f.default is not None:
                s["default"] = _to_json(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            s["default"] = _to_json(f.default_factory())  # type: ignore[misc]
        elif _optional_inner(hints[f.name]) is None:
            required.append(_camel(f.name))
        props[_camel(f.name)] = s
    out: Dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    doc = (cls.__doc__ or "").strip()
    if doc and not doc.startswith(cls.__name__ + "("):
        out["description"] = doc.splitlines()[0]
    if root:
        out = {"$schema": "https://json-schema.org/draft/2020-12/schema", **out}
    return out


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {_camel(f.name): _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _fail(at: str, message: str) -> JobError:
    return JobError.invalid(at or "params", message)


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _check_constraints(s: Dict[str, Any], v: Any, at: str) -> None:
    if "enum" in s and v not in s["enum"]:
        raise _fail(at, "must be one of " + ", ".join(repr(e) for e in s["enum"]))
    if "minimum" in s and v < s["minimum"]:
        raise _fail(at, f"must be at least {s['minimum']}")
    if "maximum" in s and v > s["maximum"]:
        raise _fail(at, f"must be at most {s['maximum']}")
    if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]:
        raise _fail(at, f"must be more than {s['exclusiveMinimum']}")
    if "exclusiveMaximum" in s and v >= s["exclusiveMaximum"]:
        raise _fail(at, f"must be less than {s['exclusiveMaximum']}")
    if "minLength" in s and len(v) < s["minLength"]:
        raise _fail(at, f"must be at least {s['minLength']} characters")
    if "maxLength" in s and len(v) > s["maxLength"]:
        raise _fail(at, f"must be at most {s['maxLength']} characters")
    if "pattern" in s and not re.search(s["pattern"], v):
        raise _fail(at, f"must match {s['pattern']}")
    if "minItems" in s and len(v) < s["minItems"]:
        raise _fail(at, f"must have at least {s['minItems']} items")
    if "maxItems" in s and len(v) > s["maxItems"]:
        raise _fail(at, f"must have at most {s['maxItems']} items")


def _convert(tp: Any, s: Dict[str, Any], v: Any, at: str) -> Any:
    inner = _optional_inner(tp)
    if inner is not None:
        return None if v is None else _convert(inner, s, v, at)
    origin = typing.get_origin(tp)
    if tp is str:
        if not isinstance(v, str):
            raise _fail(at, f"expected a string, got {_json_type(v)}")
    elif tp is bool:
        if not isinstance(v, bool):
            raise _fail(at, f"expected true or false, got {_json_type(v)}")
    elif tp is int:
        if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
            raise _fail(at, f"expected an integer, got {v!r}" if isinstance(v, float) else f"expected an integer, got {_json_type(v)}")
        v = int(v)
    elif tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(at, f"expected a number, got {_json_type(v)}")
        v = float(v)
    elif origin in (list, List):
        if not isinstance(v, list):
            raise _fail(at, f"expected an array, got {_json_type(v)}")
        (item,) = typing.get_args(tp) or (Any,)
        v = [_convert(item, s.get("items", {}), x, f"{at}/{i}" if at else str(i)) for i, x in enumerate(v)]
    elif origin is typing.Literal:
        pass  # the enum check below
    elif dataclasses.is_dataclass(tp):
        return _build(tp, v, at)
    _check_constraints(s, v, at)
    return v


def _build(cls: Type[T], value: Any, at: str) -> T:
    if not isinstance(value, dict):
        raise _fail(at, f"expected an object, got {_json_type(value)}")
    hints = _hints(cls)
    fields = {_camel(f.name): f for f in dataclasses.fields(cls)}
    schema = _schema(cls, False)["properties"]
    for key in value:
        if key not in fields:
            raise _fail(f"{at}/{key}" if at else key, "unknown parameter")
    kwargs = {}
    for key, f in fields.items():
        where = f"{at}/{key}" if at else key
        if key not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                if _optional_inner(hints[f.name]) is None:
                    raise _fail(where, "is required")
                kwargs[f.name] = None
            continue
        kwargs[f.name] = _convert(hints[f.name], schema[key], value[key], where)
    return cls(**kwargs)


def parse(cls: Type[T], params: Union[str, Dict[str, Any]]) -> T:
    """Builds the parameter dataclass from the job's JSON (text or decoded); JobError invalid-input naming the field."""
    import json

    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError as e:
            raise _fail("params", f"not JSON: {e}") from None
    return _build(cls, params, "")
