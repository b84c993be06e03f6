"""A feature's identity: a hash of what it computes, never of how it was written.

The fingerprint hashes the feature's normalized IR parts (``semantics``): the
source as far as the feature reads it (name, event time, allowed lateness,
boundedness and the name and type of each column read), the keys, the window,
the row filter and the aggregates, every expression after ``simplify_expressions``
(the optimizer's own deterministic rewrite), in the catalog's canonical JSON.

A feature over merged rows (``tx.merge(...)``, ``tx.merge_asof(...)``) also hashes
the relation the merge made (``rows``): its nodes in the plan format, pruned to what
the feature reads (``ir.lineage.columns_read``): each source joined with the columns
read from it and their types, event time, lateness and boundedness; the join kinds,
keys, interval bounds and as-of frames; the filters and projections between. So a
changed join key, interval bound or as-of tolerance is a new version, and a column
of a dimension the feature does not read is not in it. A plain feature's parts have
no ``rows`` and are what they were before merges existed.

A derived feature (``rp.derived``) hashes its expression (simplified), the request
fields it reads (name and type; not the ``rp.Request`` class's name, which computes
nothing), and each input's name and parts (so its inputs' fingerprints).

Left out, so that they never make a new version: the feature's name (a catalog
entry is found by name; the version is of its meaning), its metadata
(description, owner, tags), where it was defined (file and line: reformatting
the Python or renaming a local variable moves them) and the source's columns
the feature does not read (adding a column to a source changes no feature).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from relplan.catalog.serialize import canonical_json, expr_to_dict, nodes_to_dict, spec_to_dict
from relplan.compiler.derived import DerivedFeature
from relplan.compiler.transformation import Feature
from relplan.ir import nodes as N
from relplan.ir.errors import RelplanError
from relplan.ir.expr import Expr
from relplan.ir.graph import walk
from relplan.ir.lineage import columns_read
from relplan.ir.schema import Schema
from relplan.rules.simplify_expressions import simplify

# Part of every fingerprint: a relplan whose semantics of the same IR changed would bump it.
SEMANTICS_VERSION = 1


def _used(f: Feature) -> set[str]:
    """The columns of the feature's rows its keys, filter, aggregates and event time read."""
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
    return used


def source_reads(f: Feature) -> dict[str, tuple[str, ...]]:
    """Every source ``f`` reads -> the columns it reads of it, in source order: its own
    source's, and for a feature over merged rows every joined source's too (traced
    through the joins by the IR's lineage rules)."""
    used = _used(f)
    if f.body.rows is None:
        src = f.source.node()
        return {src.name: tuple(c for c in src.columns.names if c in used)}
    read: dict[str, set[str]] = {}
    sources: dict[str, N.Source] = {}
    for node, cols in columns_read(f.body.rows, used).items():
        if isinstance(node, N.Source):
            read.setdefault(node.name, set()).update(cols)
            sources.setdefault(node.name, node)
    return {name: tuple(c for c in sources[name].columns.names if c in read[name]) for name in sorted(read)}


def reads(f: Feature) -> tuple[str, ...]:
    """The columns ``f`` reads of its own source (the one its transformation takes), in
    source order; ``source_reads`` has those of every source of merged rows."""
    return source_reads(f).get(f.source.node().name, ())


def semantics(f: Feature | DerivedFeature) -> dict[str, Any]:
    """The parts of ``f`` that decide its values, normalized; what the fingerprint hashes."""
    if isinstance(f, DerivedFeature):
        return _derived_semantics(f)
    b = f.body
    src = f.source.node()
    read = set(reads(f))
    out = {
        "semantics": SEMANTICS_VERSION,
        "source": {
            "name": src.name,
            "event_time": src.event_time,
            "lateness": src.lateness,
            "bounded": src.bounded,
            "columns": [[c.name, c.dtype.name] for c in src.columns if c.name in read],
        },
        "keys": [[k, _expr(e)] for k, e in b.keys],
        # closed only where it is not "right": every other feature's fingerprint is unchanged.
        "window": spec_to_dict(b.spec),
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
    if b.rows is not None:  # only then: a plain feature's parts (and fingerprint) stay as they were
        doc = nodes_to_dict(_pruned(b.rows, _used(f)))
        out["rows"] = {"nodes": doc["nodes"], "root": doc["roots"][0]}
    return out


def _derived_semantics(d: DerivedFeature) -> dict[str, Any]:
    return {
        "semantics": SEMANTICS_VERSION,
        "derived": _expr(d.expr),
        # Each input by name (the expression reads its columns by name) and parts.
        "inputs": [{"name": f.name, "columns": list(f.columns), "parts": semantics(f)} for f in d.inputs],
        "request": [[r.name, r.dtype.name] for r in d.request],
    }


def fingerprint(f: Feature | DerivedFeature) -> str:
    """The hex SHA-256 of ``semantics(f)`` in canonical JSON."""
    return digest(semantics(f))


def digest(semantics: dict[str, Any]) -> str:
    """The hex SHA-256 of normalized parts (a feature's, or a source's shape) in canonical JSON."""
    return hashlib.sha256(canonical_json(semantics).encode()).hexdigest()


def _expr(e: Expr) -> Any:
    return expr_to_dict(simplify(e))


def _pruned(rows: N.Node, used: set[str]) -> N.Node:
    """The relation ``rows`` as far as columns ``used`` of it read: each source with the
    columns read only (no declared keys: they decide no value), each projection and
    as-of join with the outputs read only, expressions simplified. A node that cannot
    be rebuilt so is kept whole (never a guess: more in the hash, not less)."""
    read = columns_read(rows, used)
    memo: dict[N.Node, N.Node] = {}
    for n in walk([rows]):
        keep = read.get(n, frozenset())
        inputs = tuple(memo[i] for i in n.inputs)
        try:
            memo[n] = _prune_one(n, inputs, keep)
        except RelplanError:
            memo[n] = n
    return memo[rows]


def _prune_one(n: N.Node, inputs: tuple[N.Node, ...], keep: frozenset[str]) -> N.Node:
    if isinstance(n, N.Source):
        cols = Schema(tuple(c for c in n.columns if c.name in keep))
        event_time = n.event_time if n.event_time in keep else None
        return N.Source(n.name, cols, event_time, n.lateness if event_time else 0, n.bounded, ())
    if isinstance(n, N.Filter):
        return N.Filter(inputs[0], simplify(n.predicate))
    if isinstance(n, N.Project):
        return N.Project(inputs[0], tuple((name, simplify(e)) for name, e in n.exprs if name in keep))
    if isinstance(n, N.AsOfJoin):
        windows = tuple((frame, tuple(a for a in aggs if a.name in keep)) for frame, aggs in n.windows)
        # The optimizer's choices (lowering, tile, estimates) decide no value.
        return N.AsOfJoin(inputs[0], inputs[1], n.on, n.spine_time, n.event_time,
                          tuple(w for w in windows if w[1]) or n.windows, n.row_id, None, None, (), n.unique_times)
    if isinstance(n, N.Join):
        return dataclasses.replace(n, left=inputs[0], right=inputs[1])
    return n.with_inputs(inputs)
