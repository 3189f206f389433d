"""Diff of two workflow definitions (SPEC §4).

``diff_definitions(a, b) -> (patch, summary)``

``patch`` is an RFC 6902 JSON Patch (a list of plain dicts) that turns ``a`` into ``b``
exactly: ``jsonpatch.apply_patch(a, patch) == b`` with types preserved (``1`` stays
distinct from ``1.0`` and ``True``). It comes from ``jsonpatch.make_patch`` and is checked
by applying it; should that ever not give ``b`` exactly, a simple structural patch
(add/remove/replace only) is returned instead. Lists are diffed by position in the patch.

``summary`` matches steps by ``id``, not by position. Parts, in this order, zero parts
left out, joined by ``", "``, the first one capitalised:

- ``Renamed workflow``: ``name`` differs
- ``added N step(s)``: ids only in ``b``
- ``removed N step(s)``: ids only in ``a``
- ``modified N step(s)``: ids in both whose step object differs in any way
- ``reordered steps``: same steps, same contents, different order
- ``changed settings``: any other top-level field differs (``description``,
  ``input_schema``, ``timeout_seconds``, ``max_concurrent_runs``, ...)

Equal definitions give ``No changes``. Examples: ``Added 1 step, modified 1 step``,
``Added 2 steps, removed 1 step``, ``Renamed workflow, changed settings``.
Steps without a string id (never in a valid definition) are matched by position among
themselves; a repeated id is matched by occurrence.
"""
from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

__all__ = ["diff_definitions", "strict_equal", "summarize"]


def strict_equal(a: Any, b: Any) -> bool:
    """JSON equality that tells ``1``, ``1.0`` and ``True`` apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a and b != b:  # NaN
        return True
    return a == b


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _simple_patch(a: Any, b: Any, path: str = "") -> list[dict]:
    """A correct-by-construction patch: recursive on dicts and equal-length lists."""
    if strict_equal(a, b):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        ops: list[dict] = []
        for k in a:
            if k not in b:
                ops.append({"op": "remove", "path": f"{path}/{_escape(str(k))}"})
        for k in b:
            p = f"{path}/{_escape(str(k))}"
            if k not in a:
                ops.append({"op": "add", "path": p, "value": copy.deepcopy(b[k])})
            else:
                ops.extend(_simple_patch(a[k], b[k], p))
        return ops
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        ops = []
        for i, (x, y) in enumerate(zip(a, b)):
            ops.extend(_simple_patch(x, y, f"{path}/{i}"))
        return ops
    return [{"op": "replace", "path": path, "value": copy.deepcopy(b)}]


def _patch(a: Any, b: Any) -> list[dict]:
    try:
        ops = jsonpatch.make_patch(a, b).patch
        ops = json.loads(json.dumps(ops))  # plain, unshared dicts
        if strict_equal(jsonpatch.apply_patch(a, ops), b):
            return ops
    except Exception:
        pass
    return _simple_patch(a, b)


def _keyed_steps(defn: Any) -> dict[Any, Any]:
    steps = defn.get("steps") if isinstance(defn, dict) else None
    if not isinstance(steps, list):
        return {}
    keyed: dict[Any, Any] = {}
    occurrences: dict[str, int] = {}
    anonymous = 0
    for step in steps:
        sid = step.get("id") if isinstance(step, dict) else None
        if isinstance(sid, str):
            n = occurrences.get(sid, 0)
            occurrences[sid] = n + 1
            keyed[(sid, n)] = step
        else:
            keyed[("#", anonymous)] = step
            anonymous += 1
    return keyed


def _plural(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def summarize(a: Any, b: Any) -> str:
    """The human summary of the change from ``a`` to ``b`` (see the module docstring)."""
    if strict_equal(a, b):
        return "No changes"
    da = a if isinstance(a, dict) else {}
    db = b if isinstance(b, dict) else {}
    parts: list[str] = []
    if not strict_equal(da.get("name"), db.get("name")):
        parts.append("renamed workflow")
    sa, sb = _keyed_steps(da), _keyed_steps(db)
    added = [k for k in sb if k not in sa]
    removed = [k for k in sa if k not in sb]
    modified = [k for k in sa if k in sb and not strict_equal(sa[k], sb[k])]
    if added:
        parts.append(f"added {_plural(len(added))}")
    if removed:
        parts.append(f"removed {_plural(len(removed))}")
    if modified:
        parts.append(f"modified {_plural(len(modified))}")
    if not (added or removed or modified) and not strict_equal(da.get("steps"), db.get("steps")):
        parts.append("reordered steps")
    others = (set(da) | set(db)) - {"name", "steps"}
    if any(k not in da or k not in db or not strict_equal(da[k], db[k]) for k in others):
        parts.append("changed settings")
    if not parts:  # e.g. one side is not an object
        parts.append("changed definition")
    text = ", ".join(parts)
    return text[0].upper() + text[1:]


def diff_definitions(a: dict, b: dict) -> tuple[list[dict], str]:
    """``(RFC 6902 patch turning a into b, human summary)``. Never mutates its arguments."""
    return _patch(a, b), summarize(a, b)
