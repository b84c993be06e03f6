"""A feature's identity: a hash of what it computes, never of how it was written.

The fingerprint hashes the feature's normalized IR parts (``semantics``): the
source as far as the feature reads it (name, event time, allowed lateness,
boundedness and the name and type of each column read), the keys, the window,
the row filter and the aggregates, every expression after ``simplify_expressions``
(the optimizer's own deterministic rewrite), in the catalog's canonical JSON.

Left out, so that they never make a new version: the feature's name (a catalog
entry is found by name; the version is of its meaning), its metadata
(description, owner, tags), where it was defined (file and line: reformatting
the Python or renaming a local variable moves them) and the source's columns
the feature does not read (adding a column to a source changes no feature).
"""

from __future__ import annotations

import hashlib
from typing import Any

from relplan.catalog.serialize import canonical_json, expr_to_dict
from relplan.compiler.transformation import Feature
from relplan.ir.expr import Expr
from relplan.rules.simplify_expressions import simplify

# Part of every fingerprint: a relplan whose semantics of the same IR changed would bump it.
SEMANTICS_VERSION = 1


def reads(f: Feature) -> tuple[str, ...]:
    """The source columns ``f`` reads (its keys, filter, aggregates and event time), in source order."""
    b = f.body
    used: set[str] = set()
    for _, e in b.keys:
        used |= e.columns()
    if b.mask is not None:
        used |= b.mask.columns()
    for _, call in b.aggs:
        used |= call.columns()
    src = f.source.node()
    if src.event_time is not None:
        used.add(src.event_time)
    return tuple(c for c in src.columns.names if c in used)


def semantics(f: Feature) -> dict[str, Any]:
    """The parts of ``f`` that decide its values, normalized; what the fingerprint hashes."""
    b = f.body
    src = f.source.node()
    read = set(reads(f))
    return {
        "semantics": SEMANTICS_VERSION,
        "source": {
            "name": src.name,
            "event_time": src.event_time,
            "lateness": src.lateness,
            "bounded": src.bounded,
            "columns": [[c.name, c.dtype.name] for c in src.columns if c.name in read],
        },
        "keys": [[k, _expr(e)] for k, e in b.keys],
        "window": {"kind": b.spec.kind, "size": b.spec.size, "slide": b.spec.slide},
        "filter": None if b.mask is None else _expr(b.mask),
        "aggregates": [
            {
                "output": suffix,
                "func": call.func,
                "arg": None if call.arg is None else _expr(call.arg),
                "filter": None if call.filter is None else _expr(call.filter),
                "order": None if call.order is None else _expr(call.order),
            }
            for suffix, call in b.aggs
        ],
    }


def fingerprint(f: Feature) -> str:
    """The hex SHA-256 of ``semantics(f)`` in canonical JSON."""
    return digest(semantics(f))


def digest(semantics: dict[str, Any]) -> str:
    """The hex SHA-256 of normalized parts (a feature's, or a source's shape) in canonical JSON."""
    return hashlib.sha256(canonical_json(semantics).encode()).hexdigest()


def _expr(e: Expr) -> Any:
    return expr_to_dict(simplify(e))
