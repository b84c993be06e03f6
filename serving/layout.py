"""What the online store keeps for a set of features, and where (store-independent).

Features over one source with the same keys form a **group**; each output column
of a feature is a **slot**. Per group and entity key the store holds one record
(a Redis hash; rows of a SQLite table) of fields, each MessagePack:

    "<h>"            the tiles of size h: {start: [partial per slot of size h]}, for the
                     tiles a request from the materialized point on can read
    "e:<h>:<start>"  the events of one tile, as columns [times, values per event column],
                     where an edge of a window served from that point on can fall in it
    "base"           lifetime slots: the partial of every event before the group's
                     base time, so a request reads base + tiles since, not all history

A sliding window of w at request time t holds the events with ``t - w <= ts < t``
(training data's default: events at exactly t are not counted, they may be the
label's own); a closed="both" window, whose edge event counts, is kept as a slot of
``w + 1us``: ``t - w - 1us <= ts < t``. It is read as the events of the head tile at or after t - w, the
partials of the whole tiles between, and the events of the tail tile before t.
Tile sizes are chosen per window so that a window spans about 12 to 60 tiles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from relplan.compiler.compile import _calls
from relplan.compiler.transformation import Feature
from relplan.ir import nodes
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import FeatureError, UnsupportedError
from relplan.ir.expr import Case, Column, Expr, Literal, Unary, and_all
from relplan.ir.graph import walk
from relplan.ir.printer import explain
from relplan.ir.windows import US, format_duration

FORMAT = 1  # the layout's version, kept in the store's metadata
# Tile sizes, each dividing a day (so that a day boundary is every size's boundary).
TILE_SIZES = tuple(n * US[u] for n, u in ((1, "s"), (10, "s"), (1, "m"), (5, "m"), (15, "m"), (1, "h"), (6, "h"), (1, "d")))
LIFETIME_TILE = US["d"]
MIN_TILES = 12


def tile_size(window: int | None) -> int:
    """The tile size for a window: the largest that still splits it into ``MIN_TILES``."""
    if window is None:
        return LIFETIME_TILE
    fitting = [h for h in TILE_SIZES if h * MIN_TILES <= window]
    return fitting[-1] if fitting else TILE_SIZES[0]


@dataclass(frozen=True)
class Slot:
    """One served column: its aggregate over the group's rows in a sliding window (or lifetime)."""

    column: str
    func: str
    window: int | None  # microseconds; None: lifetime
    tile: int  # tile size, microseconds
    dtype: T.DataType  # the result type, as training data has it
    arg_dtype: T.DataType | None  # the masked argument's type (None: count(*))
    value_col: str  # the masked argument's column in the group's events
    definition: str  # what the column means (source, keys, aggregate, window): a changed feature differs

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column, "func": self.func, "window": self.window, "tile": self.tile,
            "dtype": self.dtype.name, "arg_dtype": None if self.arg_dtype is None else self.arg_dtype.name,
            "value_col": self.value_col, "definition": self.definition,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Slot:
        return Slot(
            d["column"], d["func"], d["window"], d["tile"], T.DataType(d["dtype"]),
            None if d["arg_dtype"] is None else T.DataType(d["arg_dtype"]), d["value_col"], d["definition"],
        )


@dataclass(frozen=True)
class Group:
    """Slots over one source and key, materialized together (one record per entity key)."""

    id: str
    source: str
    time: str  # the source's event-time column
    keys: tuple[tuple[str, T.DataType], ...]
    slots: tuple[Slot, ...]

    def tiles(self) -> tuple[int, ...]:
        return tuple(sorted({s.tile for s in self.slots}))

    def slots_of(self, tile: int) -> tuple[Slot, ...]:
        """The slots whose tiles have size ``tile``, in the order of a tile record's partials."""
        return tuple(s for s in self.slots if s.tile == tile)

    def event_columns(self, tile: int) -> tuple[str, ...]:
        """The masked-argument columns the slots of size ``tile`` read, each once: the
        columns of a tile's stored events (after their times)."""
        return tuple(dict.fromkeys(s.value_col for s in self.slots_of(tile)))

    def lifetime_slots(self) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if s.window is None)

    def longest(self, tile: int) -> int:
        """The longest sliding window with tiles of ``tile`` (0 for lifetime only)."""
        return max((s.window or 0 for s in self.slots_of(tile)), default=0)


def servable(f: Feature) -> None:
    """Refuse a feature the store cannot serve, saying why."""
    if not isinstance(f, Feature):
        raise FeatureError(f"the online store takes features (or their names), got {type(f).__name__}: {f!r}")
    if not f.per_event:
        raise UnsupportedError(
            f"feature {f.name!r} is per window ({f.spec!r}): it has one value per key and window, not a value "
            "at any time, so it cannot be served online; serve a sliding window (rp.sliding) instead",
            where=f.defined_at,
        )


def _key_spec(f: Feature) -> tuple[tuple[str, Expr], ...]:
    return f.body.keys


def definition(f: Feature, call: AggCall) -> str:
    """A column's meaning as text: equal for the same definition, whatever the Python around it."""
    src = f.source.node()
    parts: list[Any] = [
        src.name, [[c.name, c.dtype.name] for c in src.columns], src.event_time,
        [[k, e.sql()] for k, e in _key_spec(f)], repr(f.spec), call.sql(),
    ]
    if f.body.rows is not None:  # rows a merge made: the merge (its sources and joins) is part of the meaning
        parts.append(explain([f.body.rows], schema=True))
    return json.dumps(parts)


def is_merged(prep: nodes.Node) -> bool:
    """Whether a group's event plan reads rows a merge made (several sources, a join)."""
    return any(isinstance(n, (nodes.Join, nodes.AsOfJoin)) for n in walk([prep]))


def merged_sources(prep: nodes.Node) -> list[str]:
    return list(dict.fromkeys(n.name for n in walk([prep]) if isinstance(n, nodes.Source)))


def definitions(f: Feature) -> dict[str, str]:
    """Per output column of ``f``, its ``definition``."""
    return {call.name: definition(f, call) for call in _calls(f, f.body.mask)}


def _served_window(f: Feature) -> int | None:
    """The slot's window ``w'``, read at request time t as ``[t - w', t)``: the feature's
    value an instant (1us) before t. For ``(t - w, t]`` that is ``w' = w``; for
    closed="both", ``[t - w, t]`` an instant before t holds ``t - w - 1us <= ts < t``,
    so ``w' = w + 1us``. None: lifetime."""
    spec = f.spec
    if spec.kind != "sliding":
        return None
    assert spec.size is not None
    return spec.size + (1 if spec.lower_inclusive else 0)


def _value_expr(call: AggCall) -> Expr:
    """The masked argument: the aggregate's input where its filter holds, else NULL (count(*): 1)."""
    arg = call.arg if call.arg is not None else Literal(1)
    if call.filter is None:
        return arg
    return Case(((call.filter, arg),))


def group_features(features: list[Feature]) -> list[tuple[Group, nodes.Node]]:
    """The groups of ``features`` with, per group, the IR of its events: one row per source
    event with a non-NULL key, the keys, the event time and each slot's masked argument."""
    by: dict[tuple[Any, ...], list[Feature]] = {}
    for f in features:
        servable(f)
        # Rows a merge made are a group of their own: materialized through the merge.
        sig = (f.source.source_name, tuple((k, e.sql()) for k, e in _key_spec(f)), f.body.rows)
        by.setdefault(sig, []).append(f)
    out = []
    for (source_name, _, _), feats in by.items():
        src = feats[0].source.node()
        assert src.event_time is not None
        keys = _key_spec(feats[0])
        values: dict[str, str] = {}  # masked argument SQL -> its column
        exprs: list[tuple[str, Expr]] = []
        slots = []
        for f in feats:
            for call in _calls(f, f.body.mask):
                e = _value_expr(call)
                name = values.get(e.sql())
                if name is None:
                    name = values[e.sql()] = f"__v{len(values)}"
                    exprs.append((name, e))
                window = _served_window(f)
                slots.append(Slot(
                    call.name, call.func, window, tile_size(window), call.dtype,
                    None if call.arg is None else call.arg.dtype, name, definition(f, call),
                ))
        not_null = and_all([Unary("IS NOT NULL", e) for _, e in keys])
        rows = feats[0].body.input_node()
        node: nodes.Node = rows if not_null is None else nodes.Filter(rows, not_null)
        ts = src.event_time
        node = nodes.Project(node, (*keys, (ts, Column(ts, T.Timestamp)), *exprs))
        key_types = tuple((k, e.dtype) for k, e in keys)
        ident = json.dumps([FORMAT, [s.definition for s in slots], [s.column for s in slots]])
        gid = hashlib.sha256(ident.encode()).hexdigest()[:16]
        out.append((Group(gid, source_name, ts, key_types, tuple(slots)), node))
    return out


def group_to_json(g: Group, *, until: int, serve_from: int, base: int | None, raw_from: dict[int, int]) -> str:
    return json.dumps({
        "format": FORMAT, "id": g.id, "source": g.source, "time": g.time, "keys": [[k, t.name] for k, t in g.keys],
        "slots": [s.to_json() for s in g.slots], "until": until, "serve_from": serve_from, "base": base,
        "raw_from": {str(h): v for h, v in raw_from.items()},
    }, sort_keys=True)


@dataclass(frozen=True)
class GroupState:
    """A materialized group as the store's metadata describes it."""

    group: Group
    until: int  # events before it came from the tables (microseconds)
    serve_from: int  # requests at or after it are exact: until - the source's lateness
    base: int | None  # lifetime slots: events before it are in the "base" partial
    raw_from: dict[int, int]  # per tile size: tiles from this start keep their events


def group_from_json(text: str) -> GroupState:
    d = json.loads(text)
    if d.get("format") != FORMAT:
        raise FeatureError(f"the online store was written in layout format {d.get('format')}; this relplan reads {FORMAT}")
    g = Group(d["id"], d["source"], d["time"], tuple((k, T.DataType(t)) for k, t in d["keys"]), tuple(Slot.from_json(s) for s in d["slots"]))
    return GroupState(g, d["until"], d["serve_from"], d["base"], {int(h): v for h, v in d["raw_from"].items()})


def describe_window(s: Slot) -> str:
    return "lifetime" if s.window is None else format_duration(s.window)
