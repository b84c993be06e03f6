"""The online store: materialize (backfill), push (streaming updates), serve.

    with rp.online_store("sqlite:///features.db") as store:      # or "redis://localhost:6379/0"
        store.materialize([tx_count_1d, latest_amt], tables={"Transactions": tx}, until=cutoff)
        store.push(Transactions, new_events, batch_id="2024-05-01T10:00/17")
        store.get_online_features([{"account_id": 42}], features=[tx_count_1d, latest_amt])

The value served for key k at time t is training data's for a spine row (k, t)
(``rp.pitc_join_features``, default ``inclusive=False``): events at exactly t are
not counted. What the store keeps and why it is exact: ``layout.py``; how
partial aggregates combine: ``partials.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from relplan.backends.arrow_io import as_arrow, conform_table
from relplan.compiler import progress as _progress
from relplan.compiler.derived import DerivedFeature, split_features
from relplan.compiler.source import Source
from relplan.compiler.transformation import Feature
from relplan.ir import nodes
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import DataError, FeatureError, RelplanError
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.graph import walk
from relplan.ir.schema import Schema
from relplan.ir.windows import TimeWindow
from relplan.serving import partials
from relplan.serving.derived import DerivedEvaluator
from relplan.serving.layout import (
    LIFETIME_TILE, Group, GroupState, Slot, definitions, group_features, group_from_json, group_to_json, is_merged,
    merged_sources, servable,
)
from relplan.serving.storage import Storage, StoreError

_log = logging.getLogger("relplan.serving")

META = "rp:meta"  # fields: "g:<group id>" -> the group's state; "c:<column>" -> its group id and definition
US_COL = "__rp_us"
SMALL_PUSH = 200  # rows: below, push projects events with the reference executor (measured crossover)
START = "__rp_start"


def record_name(gid: str, key: str) -> str:
    return f"rp:{gid}:{key}"


def _batches(source: str) -> str:
    return f"rp:batches:{source}"


def _key_text(values: Sequence[Any]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _dumps(obj: Any) -> str:
    """Metadata: JSON text."""
    return json.dumps(obj, separators=(",", ":"))


def _pack(obj: Any) -> bytes:
    """State (partials, tiles, events): MessagePack, exact for every float (inf, -0.0) and
    several times faster than JSON both ways, which is most of a request's own time."""
    return msgpack.packb(obj)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, strict_map_key=False)


def _plain(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values as the store keeps them: timestamps in epoch microseconds, dates in days."""
    t = col.type
    if pa.types.is_timestamp(t):
        col = col.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64())
    elif pa.types.is_date(t):
        col = col.cast(pa.date32()).cast(pa.int32())
    t = col.type
    # Through NumPy: ~10x faster than to_pylist (which makes a pyarrow scalar per value).
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        if col.null_count == 0:
            return col.to_numpy().tolist()
        values = col.fill_null(False if pa.types.is_boolean(t) else 0).to_numpy().tolist()
        for i in np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False)).tolist():
            values[i] = None
        return values
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.to_numpy(zero_copy_only=False).tolist()
    return col.to_pylist()


def to_us(value: Any, what: str) -> int:
    """Epoch microseconds of a datetime (naive: UTC), a pandas or numpy time, or an ISO string."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise DataError(f"{what} {value!r} is not an ISO time like '2024-05-01T10:00:00'") from None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[us]").astype(np.int64))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise DataError(f"{what} must be a datetime, got {type(value).__name__}: {value!r}")


def _from_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)


def _floor(us: int, h: int) -> int:
    return us - us % h  # Python's % floors: right for times before 1970 too


# ---------------------------------------------------------------------------------------------
# What a request reads: per group, tile size and time, the fields and how each is used.


@dataclass(frozen=True)
class _Edge:
    """A field read besides the whole tiles: the lifetime base, or a tile's events in [lo, hi)."""

    field: str
    lo: int = 0
    hi: int = 0

    @property
    def is_base(self) -> bool:
        return self.field == "base"


@dataclass(frozen=True)
class _Parts:
    """What a window at one request time reads: whole tiles (starts in field ``tiles``), then edges."""

    tiles: str
    starts: tuple[int, ...]
    edges: tuple[_Edge, ...]

    def fields(self) -> list[str]:
        return ([self.tiles] if self.starts else []) + [e.field for e in self.edges]


def _parts(slot: Slot, t: int, base: int | None) -> _Parts:
    """The parts of ``slot``'s window at request time t: ``[t - w, t)``."""
    h = slot.tile
    tail = _floor(t, h)
    edges: list[_Edge] = []
    if slot.window is None:
        assert base is not None
        edges.append(_Edge("base"))
        first = base
    else:
        lo = t - slot.window
        head = _floor(lo, h)
        if head == tail:  # the window lies in one tile (a window shorter than the tile)
            return _Parts(str(h), (), (_Edge(f"e:{h}:{head}", lo, t),))
        first = head
        if head < lo:
            edges.append(_Edge(f"e:{h}:{head}", lo, head + h))
            first = head + h
    if tail < t:
        edges.append(_Edge(f"e:{h}:{tail}", tail, t))
    return _Parts(str(h), tuple(range(first, tail, h)), tuple(edges))


@dataclass
class _Served:
    """One requested column: where its values come from."""

    column: str
    state: GroupState
    slot: Slot
    index: int  # its place among the partials of its tile size
    base_index: int  # among the group's lifetime slots (-1: not lifetime)
    event_index: int  # its values' column in a tile's stored events (0 is their times)
    combine: Callable[[Any, Any], Any] = field(repr=False)  # its partial with one more
    fold: Callable[[Any, list[Any]], Any] = field(repr=False)  # its partial with a window's whole tiles


class PreparedRequest:
    """Features resolved once against the store's metadata: a request does no metadata work."""

    def __init__(
        self, store: OnlineStore, columns: list[_Served], items: tuple[Any, ...], features: tuple[Any, ...],
        layout: dict[str, bytes], outputs: tuple[str, ...] | None = None, derived: tuple[DerivedFeature, ...] = (),
    ) -> None:
        self.store = store
        self.columns = columns  # what is read from the store (a derived feature's inputs too)
        self.items = items  # what was asked for (features or names): re-prepared from it
        # The Feature and DerivedFeature objects among them (the consistency check replays them).
        self.features = features
        self.layout = layout  # per group, its layout when prepared: each request checks it
        # The result's feature columns, in the order asked (inputs read only for a derived one left out).
        self.outputs = outputs if outputs is not None else tuple(c.column for c in columns)
        self.derived = derived
        self.evaluator = (
            DerivedEvaluator(derived, [(c.column, c.slot.dtype) for c in columns]) if derived else None
        )
        self.groups: dict[str, GroupState] = {}
        for c in columns:
            self.groups.setdefault(c.state.group.id, c.state)
        self.keys: list[tuple[str, T.DataType]] = []
        for st in self.groups.values():
            for k, t in st.group.keys:
                if k not in (n for n, _ in self.keys):
                    self.keys.append((k, t))
        # Columns of one group with the same window read the same parts: planned once per request time.
        self.combos: dict[str, list[tuple[Slot, list[int]]]] = {}
        for gid in self.groups:
            by_window: dict[tuple[int, int | None], list[int]] = {}
            for i, c in enumerate(columns):
                if c.state.group.id == gid:
                    by_window.setdefault((c.slot.tile, c.slot.window), []).append(i)
            self.combos[gid] = [(columns[ix[0]].slot, ix) for ix in by_window.values()]
        self._plans: dict[tuple[str, int], tuple[list[str], list[tuple[_Parts, list[int]]]]] = {}
        # The result's columns by Arrow type: a request converts each type's values at once.
        by_type: dict[pa.DataType, list[int]] = {}
        for i, f in enumerate(Schema.of([(c.column, c.slot.dtype) for c in columns]).to_arrow()):
            by_type.setdefault(f.type, []).append(i)
        self.by_type = list(by_type.items())

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The result's feature columns (derived ones included), in the order asked."""
        return self.outputs

    def _plan(self, gid: str, t: int) -> tuple[list[str], list[tuple[_Parts, list[int]]]]:
        """The fields to read for group ``gid`` at time t, and per window its parts and columns."""
        got = self._plans.get((gid, t))
        if got is None:
            base = self.groups[gid].base
            plan = [(_parts(slot, t, base), ix) for slot, ix in self.combos[gid]]
            fields = sorted({f for parts, _ in plan for f in parts.fields()})
            if len(self._plans) > 256:
                self._plans.clear()
            got = self._plans[(gid, t)] = (fields, plan)
        return got

    def get(self, entity_rows: Any, at: Any = None) -> pa.Table:
        """One row per entity row, in order: its columns, then each feature's value at ``at``."""
        return self.store._serve(self, entity_rows, at)


# ---------------------------------------------------------------------------------------------


class OnlineStore:
    """Features' state for serving; open one with ``rp.online_store(url)``."""

    def __init__(
        self, storage: Storage, *, clock: Callable[[], dt.datetime] | None = None, log_requests: bool = False,
        catalog: Any = None,
    ) -> None:
        self._storage = storage
        self._catalog = catalog  # an rp.Catalog: features named "name" or "name@v2" are its definitions
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._preps: dict[str, tuple[Group, nodes.Node, nodes.Source]] = {}  # group id -> its events' IR
        self._feature_of: dict[str, Feature] = {}
        self._prepared: dict[tuple[Any, ...], PreparedRequest] = {}
        self.log_requests = log_requests
        self._log: list[tuple[tuple[str, ...], tuple[Feature, ...], pa.Table]] = []
        self._closed = False

    @property
    def url(self) -> str:
        return self._storage.url

    def __repr__(self) -> str:
        return f"OnlineStore({self.url!r})"

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._storage.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RelplanError(f"the online store {self.url} is closed")

    # -- metadata -------------------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        return {k: v.decode() for k, v in self._storage.read([(META, None)])[0].items()}

    def group_states(self, source: str | None = None) -> dict[str, GroupState]:
        """The materialized groups (by id) the store serves, of ``source`` or all."""
        self._check_open()
        meta = self._meta()
        states = (group_from_json(v) for k, v in meta.items() if k.startswith("g:"))
        return {
            s.group.id: s for s in states if (source is None or s.group.source == source) and _is_live(s.group, meta)
        }

    def _remember(self, features: Iterable[Feature | DerivedFeature]) -> list[tuple[Group, nodes.Node]]:
        features, derived = split_features(list(features))
        groups = group_features(features)
        for g, prep in groups:
            self._preps[g.id] = (g, prep, _source_of(prep, g.source))
        for f in features:
            for c in f.columns:
                self._feature_of[c] = f
        for d in derived:
            self._feature_of[d.name] = d
        return groups

    def feature_of(self, column: str) -> Feature | DerivedFeature | None:
        """The Feature object behind a served column, where this store object has seen it."""
        return self._feature_of.get(column)

    def _resolve(self, features: Any) -> Any:
        """Names resolved through the store's catalog, if it has one (else left to the caller's checks)."""
        if self._catalog is None:
            return features
        items = [features] if isinstance(features, (Feature, DerivedFeature, str)) else features
        if isinstance(items, (list, tuple)) and any(isinstance(f, str) for f in items):
            return self._catalog.resolve(items)
        return features

    # -- materialize ----------------------------------------------------------------------------

    def materialize(
        self,
        features: Feature | DerivedFeature | Iterable[Feature | DerivedFeature],
        tables: Mapping[str, Any],
        *,
        until: Any = None,
        engine: str = "duckdb",
        progress: bool | None = None,
        **engine_options: Any,
    ) -> dict[str, Any]:
        """Write what serving ``features`` needs, from the events in ``tables`` before ``until``.

        Replaces these features' state (so running it again is idempotent); events
        pushed earlier are replaced too: push what came at or after ``until``. The
        aggregation runs on ``engine`` (``engine_options`` go to its backend: Spark's
        ``session=``, Flink's ``table_env=``); requests are exact from ``until`` minus the
        source's allowed lateness on. ``until`` defaults to just after the newest event.
        A derived feature (``rp.derived``) materializes its input features. A feature
        over rows a merge made is materialized through the merge (``tables`` then
        holds every source it joins); push() cannot update it.
        ``progress``: a bar while it runs (default: on a terminal, for work of a second
        or more; see ``rp.set_progress``). Returns what was written (groups, records, seconds)."""
        from relplan.backends import get_backend

        self._check_open()
        feats = _features(self._resolve(features), "materialize()")
        if not isinstance(tables, Mapping):
            raise DataError(f"tables= takes a dict of source name to table, got {type(tables).__name__}")
        started = time.perf_counter()
        groups = self._remember(feats)
        meta = self._meta()
        backend = get_backend(engine, **engine_options)
        records: dict[str, dict[str, str]] = {}
        meta_writes: dict[str, str] = {}
        drop: list[str] = []
        engine_seconds = 0.0
        with _progress.Steps("materialize", 2 * len(groups) + 1, _log, progress=progress) as steps:
            if steps.shown:
                backend.on_step = steps.note  # the engine's own steps: inputs, each query, fetching
            for i, (g, prep) in enumerate(groups):
                steps.step(f"group {i + 1}/{len(groups)}: running on {engine}")
                src = self._preps[g.id][2]
                inputs = {}
                for s_ in walk([prep]):
                    if isinstance(s_, nodes.Source) and s_.name not in inputs:
                        if s_.name not in tables:
                            raise DataError(f"no table given for source {s_.name!r}: pass tables={{{s_.name!r}: <pyarrow table>}}")
                        inputs[s_.name] = conform_table(s_, tables[s_.name])
                table = inputs[src.name]
                u = _until(table, src, until)
                serve_from = u - src.lateness
                raw_from = {h: _floor(serve_from - g.longest(h), h) for h in g.tiles()}
                base = _floor(serve_from, LIFETIME_TILE) if g.lifetime_slots() else None
                sinks = _materialize_sinks(g, prep, src, u, raw_from, base)
                t0 = time.perf_counter()
                results = backend.run(tuple(sinks), inputs)
                engine_seconds += time.perf_counter() - t0
                steps.step(f"group {i + 1}/{len(groups)}: encoding")
                before = len(records)
                _encode_group(g, results, raw_from, base, records)
                if steps.debug:
                    _log.debug(
                        "materialize: group %s over %s (%d events, tiles %s): %d records; engine results %s",
                        g.id, src.name, table.num_rows, sorted(g.tiles()), len(records) - before,
                        {name: t.num_rows for name, t in results.items()},
                    )
                drop.append(record_name(g.id, ""))
                meta_writes[f"g:{g.id}"] = group_to_json(g, until=u, serve_from=serve_from, base=base, raw_from=raw_from)
                for s in g.slots:
                    meta_writes[f"c:{s.column}"] = _dumps([g.id, s.definition])
                drop.append(_batches(src.name))
            # Groups whose every column now lives in another group are dropped with their records.
            new_owner = {c[2:]: json.loads(v)[0] for c, v in meta_writes.items() if c.startswith("c:")}
            owners = {c[2:]: json.loads(v)[0] for c, v in meta.items() if c.startswith("c:")} | new_owner
            live = set(owners.values())
            for k in meta:
                if k.startswith("g:") and k[2:] not in live:
                    drop.append(record_name(k[2:], ""))
            records[META] = {k: v.encode() for k, v in meta_writes.items()}
            steps.step(f"writing {len(records)} records")
            # With a bar, the storage's pass over the records reports every WRITE_BATCH of them.
            self._storage.replace(drop, _Reported(records, steps) if steps.shown else records)
        self._prepared.clear()
        seconds = time.perf_counter() - started
        if steps.logged:
            _log.info(
                "materialize on %s: %d group(s), %d records to %s in %.1f ms (engine %.1f ms; %s)", engine, len(groups),
                len(records) - 1, self.url, seconds * 1e3, engine_seconds * 1e3, steps.breakdown(),
            )
        return {
            "groups": [g.id for g, _ in groups], "records": len(records) - 1,
            "seconds": seconds, "engine_seconds": engine_seconds,
        }

    # -- push -----------------------------------------------------------------------------------

    def push(
        self,
        source: type[Source] | str,
        events: Any,
        batch_id: str | None = None,
        *,
        features: Feature | DerivedFeature | Iterable[Feature | DerivedFeature] | None = None,
    ) -> int:
        """Apply new events of ``source`` to every materialized feature over it, atomically.

        Events may come in any order and any batch size; a batch with a ``batch_id``
        already applied is skipped (returns 0). Returns the number of events applied.
        ``features``: the features over the source, where this store object has not
        materialized or prepared them itself (another process did)."""
        from relplan.backends import get_backend

        self._check_open()
        if features is not None:
            self._remember(_features(self._resolve(features), "push(features=...)"))
        name = source if isinstance(source, str) else getattr(source, "source_name", None)
        if name is None:
            raise DataError(f"push() takes a source class (e.g. Transactions) or its name, got {source!r}")
        states = list(self.group_states(name).values())
        merged = [
            s.group for s in self.group_states().values()
            if s.group.id in self._preps and is_merged(self._preps[s.group.id][1])
            and name in merged_sources(self._preps[s.group.id][1])
        ]
        if merged:
            cols = [sl.column for g in merged for sl in g.slots]
            joined = sorted({n for g in merged for n in merged_sources(self._preps[g.id][1])})
            raise StoreError(
                f"push() of {name!r} events cannot update {cols}: they aggregate rows merged from {joined}, and an "
                "event's merged value depends on the other sources' rows as of its time, which the online store does "
                "not keep; materialize them again (store.materialize(...)) with the new events instead"
            )
        if not states:
            raise FeatureError(f"no materialized feature reads source {name!r}: materialize features over it first")
        missing = [s.group.id for s in states if s.group.id not in self._preps]
        if missing:
            cols = [sl.column for s in states if s.group.id in missing for sl in s.group.slots]
            raise FeatureError(
                f"push() to {name!r} needs the definitions of {cols}: pass features=[...] "
                "(this store object has not materialized or prepared them)"
            )
        src = self._preps[states[0].group.id][2]
        table = conform_table(src, events)  # the wrong schema is refused here, before any write
        if batch_id is not None and not isinstance(batch_id, str):
            raise DataError(f"batch_id must be a string, got {type(batch_id).__name__}: {batch_id!r}")
        if table.num_rows == 0:
            return 0
        sinks = tuple(nodes.Sink(self._preps[s.group.id][1], f"g{i}") for i, s in enumerate(states))
        # The groups' event plans (keys, time, masked arguments) on an engine. A DuckDB query
        # costs ~3 ms whatever its size; the reference executor (pyarrow; the tests' oracle of
        # the same IR semantics) ~0.4 ms for one row but grows faster: it takes small batches.
        engine = "reference" if table.num_rows < SMALL_PUSH else "duckdb"
        results = get_backend(engine).run(sinks, {src.name: table})
        per_group = [(s, results[f"g{i}"]) for i, s in enumerate(states)]
        return self.apply(per_group, batch_id, source=name, n_events=table.num_rows)

    def apply(self, prepared: list[tuple[GroupState, pa.Table]], batch_id: str | None, *, source: str, n_events: int) -> int:
        """Merge events already projected to their groups' columns (keys, time, masked
        arguments: what a streaming job of the groups' event plans emits) into the store."""
        updates: dict[tuple[str, str], Any] = {}  # (record, field) -> new partials or events
        for st, rows in prepared:
            _updates_of(st, rows, updates)
        reads: list[tuple[str, list[str] | None]] = []
        by_record: dict[str, list[str]] = defaultdict(list)
        for record, fld in updates:
            by_record[record].append(fld)
        reads = [(r, fs) for r, fs in by_record.items()]
        if batch_id is not None:
            reads.append((_batches(source), [batch_id]))
        fields_of = {gid: st for st, _ in prepared for gid in [st.group.id]}

        def compute(current: list[dict[str, str]]) -> dict[str, dict[str, str]] | None:
            if batch_id is not None and current[-1]:
                return None
            writes: dict[str, dict[str, str]] = {}
            for (record, fields), now in zip(reads, current):
                if batch_id is not None and record == _batches(source):
                    continue
                st = fields_of[record.split(":", 2)[1]]
                out = writes.setdefault(record, {})
                for fld in fields:
                    out[fld] = _pack(_merge(st.group, fld, now.get(fld), updates[(record, fld)]))
            if batch_id is not None:
                writes[_batches(source)] = {batch_id: b"1"}
            return writes

        if not reads:
            return n_events  # no event had a key: nothing to store
        applied = self._storage.update(reads, compute)
        return n_events if applied else 0

    # -- serve ----------------------------------------------------------------------------------

    def prepare(self, features: Feature | DerivedFeature | str | Iterable[Feature | DerivedFeature | str]) -> PreparedRequest:
        """Resolve ``features`` (objects, or names of materialized features or columns) once.

        A derived feature (``rp.derived``) is served by reading its input features and
        evaluating its expression on their values and the request fields, which a
        request's entity rows carry as columns named like the fields."""
        self._check_open()
        items = [features] if isinstance(features, (Feature, DerivedFeature, str)) else list(features)
        if not items:
            raise FeatureError("get_online_features() needs at least one feature")
        if self._catalog is not None:
            items = self._resolve(items)
        key = tuple(items)
        got = self._prepared.get(key)
        if got is not None:
            return got
        meta = self._meta()
        wanted: list[tuple[str, str | None]] = []  # column, its definition when a Feature was given
        objects: list[Any] = []
        outputs: list[str] = []
        derived: list[DerivedFeature] = []
        for f in items:
            if isinstance(f, str):
                wanted.append((f, None))
                outputs.append(f)
            elif isinstance(f, Feature):
                servable(f)
                objects.append(f)
                wanted.extend(definitions(f).items())
                outputs.extend(f.columns)
            elif isinstance(f, DerivedFeature):
                objects.append(f)
                derived.append(f)
                outputs.append(f.name)
            else:
                raise FeatureError(f"features= takes features or their names, got {type(f).__name__}: {f!r}")
        if len(set(outputs)) != len(outputs):
            dup = sorted({c for c in outputs if outputs.count(c) > 1})
            raise FeatureError(f"features {dup} are requested twice")
        # A derived feature's inputs are read too, once each (also when asked for themselves).
        reading = {c for c, _ in wanted}
        for d in derived:
            for f in d.inputs:
                servable(f)
                for c, definition in definitions(f).items():
                    if c not in reading:
                        reading.add(c)
                        wanted.append((c, definition))
        if objects:
            self._remember(objects)
        columns: list[_Served] = []
        states: dict[str, GroupState] = {}
        for column, definition in wanted:
            entry = meta.get(f"c:{column}")
            if entry is None:
                known = sorted(k[2:] for k in meta if k.startswith("c:"))
                raise FeatureError(
                    f"feature {column!r} is not in the online store {self.url}; "
                    + (f"it has {known}" if known else "nothing is materialized yet: call store.materialize(...)")
                )
            gid, stored = json.loads(entry)
            if definition is not None and definition != stored:
                raise FeatureError(
                    f"feature {column!r} is defined differently from the one materialized in {self.url}: "
                    "materialize it again before serving it"
                )
            st = states.get(gid)
            if st is None:
                st = states[gid] = group_from_json(meta[f"g:{gid}"])
            slot = next(s for s in st.group.slots if s.column == column)
            same_tile = st.group.slots_of(slot.tile)
            life = st.group.lifetime_slots()
            columns.append(_Served(
                column, st, slot, same_tile.index(slot), life.index(slot) if slot in life else -1,
                1 + st.group.event_columns(slot.tile).index(slot.value_col), partials.combiner(slot.func),
                partials.folder(slot.func),
            ))
        if len({c.column for c in columns}) != len(columns):
            dup = sorted({c.column for c in columns if [d.column for d in columns].count(c.column) > 1})
            raise FeatureError(f"features {dup} are requested twice")
        layout = {gid: meta[f"g:{gid}"].encode() for gid in dict.fromkeys(c.state.group.id for c in columns)}
        prepared = PreparedRequest(self, columns, key, tuple(objects), layout, tuple(outputs), tuple(derived))
        self._prepared[key] = prepared
        return prepared

    def get_online_features(self, entity_rows: Any, features: Any, *, at: Any = None) -> pa.Table:
        """Per entity row (a pyarrow table, pandas DataFrame or list of dicts), in order:
        its columns, then each feature's value as of ``at`` (default: now; a datetime,
        or the name of a timestamp column of the rows for one time per row)."""
        return self.prepare(features).get(entity_rows, at)

    def _serve(self, req: PreparedRequest, entity_rows: Any, at: Any, retried: bool = False) -> pa.Table:
        self._check_open()
        rows = _entity_table(entity_rows)
        n = rows.num_rows
        key_values: dict[str, list[Any]] = {}
        for k, t in req.keys:
            if k not in rows.column_names:
                who = [c.column for c in req.columns if k in dict(c.state.group.keys)]
                raise DataError(f"entity rows lack the key column {k!r} ({t}) of {who}; they have {rows.column_names}")
            key_values[k] = _plain(_cast_key(rows.column(k), k, t))
        if isinstance(at, str) and at in rows.column_names:
            times = _plain(_cast_key(rows.column(at), at, T.Timestamp))
        else:
            now = to_us(self._clock() if at is None else at, "at=")
            times = [now] * n
        for st in req.groups.values():
            early = min((t for t in times if t is not None), default=st.serve_from)
            if early < st.serve_from:
                cols = [s.column for s in st.group.slots]
                raise DataError(
                    f"request time {_from_us(early).isoformat()} is before what the online store holds for {cols}: "
                    f"materialized until {_from_us(st.until).isoformat()}, exact from {_from_us(st.serve_from).isoformat()} on"
                )
        # One round trip: the groups' layouts (changed if another process materialized them
        # again since this request was prepared) and every (row, group) record's fields.
        layout = req.layout
        reads: list[tuple[str, list[str]]] = [(META, [f"g:{gid}" for gid in layout])]
        where: list[list[tuple[int, list[tuple[_Parts, list[int]]]] | None]] = []
        for i in range(n):
            t = times[i]
            per_row = []
            for gid, st in req.groups.items():
                kv = [key_values[k][i] for k, _ in st.group.keys]
                if t is None or any(v is None for v in kv):
                    per_row.append(None)
                    continue
                fields, plan = req._plan(gid, t)
                reads.append((record_name(gid, _key_text(kv)), fields))
                per_row.append((len(reads) - 1, plan))
            where.append(per_row)
        got = self._storage.read(reads)
        if any(got[0].get(f"g:{gid}") != text for gid, text in layout.items()):
            if retried:
                raise StoreError(f"the online store {self.url} is being materialized again: retry the request")
            self._prepared.pop(req.items, None)
            fresh = self.prepare(list(req.items))
            req.__dict__.update(fresh.__dict__)  # the caller's prepared request is current again
            return self._serve(req, entity_rows, at, retried=True)
        columns = req.columns
        out: list[list[Any]] = [[None] * n for _ in columns]
        for i, per_row in enumerate(where):
            for entry in per_row:
                if entry is None:
                    continue  # a NULL key or time: NULL for every feature, a count too (as training data)
                idx, plan = entry
                raw = got[idx]
                decoded: dict[str, Any] = {}

                def field(name: str) -> Any:
                    rec = decoded.get(name)
                    if rec is None:
                        data = raw.get(name)
                        if data is not None:
                            rec = decoded[name] = _unpack(data)
                    return rec

                for parts, ix in plan:
                    acc: list[Any] = [None] * len(ix)
                    blob = field(parts.tiles) if parts.starts else None
                    if blob:
                        # Per column, one fold over the whole tiles' partials (in time order).
                        tiles = [p for s in parts.starts if (p := blob.get(s)) is not None]
                        for j, c in enumerate(ix):
                            k = columns[c].index
                            acc[j] = columns[c].fold(acc[j], [v for p in tiles if (v := p[k]) is not None])
                    for edge in parts.edges:
                        rec = field(edge.field)
                        if rec is None:
                            continue
                        if edge.is_base:
                            for j, c in enumerate(ix):
                                acc[j] = columns[c].combine(acc[j], rec[columns[c].base_index])
                            continue
                        lo, hi = edge.lo, edge.hi
                        ev_times = rec[0]
                        inside = [k for k, t in enumerate(ev_times) if lo <= t < hi]
                        for j, c in enumerate(ix):
                            col = columns[c]
                            vals = rec[col.event_index]
                            acc[j] = col.combine(acc[j], partials.of_events(col.slot.func, [(ev_times[k], vals[k]) for k in inside]))
                    for j, c in enumerate(ix):
                        out[c][i] = partials.value(columns[c].slot.func, acc[j])
        # One array per result type (a few), sliced into the columns of that type.
        arrays: list[Any] = [None] * len(columns)
        for target, ix in req.by_type:
            flat = [v for i in ix for v in out[i]]
            arr = pa.array(flat, pa.int64()).cast(target) if pa.types.is_timestamp(target) else (
                pa.array(flat, pa.int32()).cast(target) if pa.types.is_date(target) else pa.array(flat, target))
            for j, i in enumerate(ix):
                arrays[i] = arr.slice(j * n, n)
        values = {c.column: a for c, a in zip(columns, arrays)}
        request: dict[str, Any] = {}
        if req.evaluator is not None:
            # The expressions over the served values and the request's: the IR's semantics,
            # by the reference executor (serving/derived.py).
            request = req.evaluator.request_columns(rows)
            values.update(req.evaluator.evaluate(values, request, n))
        names = req.feature_columns
        result = pa.Table.from_arrays([*rows.columns, *(values[c] for c in names)], names=[*rows.column_names, *names])
        if self.log_requests:
            logged = pa.table({
                **{k: rows.column(k) for k, _ in req.keys},
                "request_time": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                **{k: v for k, v in request.items() if k not in dict(req.keys) and k != "request_time"},
                **{c: values[c] for c in names},
            })
            self._log.append((req.feature_columns, req.features, logged))
        return result

    def request_log(self) -> list[tuple[tuple[str, ...], tuple[Feature, ...], pa.Table]]:
        """What was served since the store was opened with ``log_requests=True``: per request,
        (feature columns, the Feature objects asked for, a table of keys, request_time and values)."""
        return list(self._log)


# ---------------------------------------------------------------------------------------------
# materialize: the engine's queries and their encoding as records


WRITE_BATCH = 1000  # records between two reports of the write to a progress bar


class _Reported(dict):  # type: ignore[type-arg]
    """The records to write, whose ``items()`` (the storage's one pass over them) tells
    the bar how many have been written, every WRITE_BATCH records."""

    def __init__(self, records: dict[str, Any], steps: Any) -> None:
        super().__init__(records)
        self._steps = steps

    def items(self) -> Any:  # type: ignore[override]
        n = len(self)
        for i, item in enumerate(dict.items(self)):
            if i % WRITE_BATCH == 0:
                self._steps.note(f"{i}/{n}")
            yield item
        self._steps.note(f"{n}/{n}")


def _source_of(prep: nodes.Node, name: str) -> nodes.Source:
    """The group's source (of its event time and lateness): among a merge's sources, the left one."""
    return next(n for n in walk(prep) if isinstance(n, nodes.Source) and n.name == name)


def _features(features: Any, what: str) -> list[Feature]:
    """The features given, a derived feature's inputs in its place."""
    one = isinstance(features, (Feature, DerivedFeature))
    items = [features] if one else list(features) if isinstance(features, Iterable) and not isinstance(features, str) else None
    if not items:
        raise FeatureError(f"{what} takes a feature or a list of features, got {features!r}")
    for f in items:
        if not isinstance(f, (Feature, DerivedFeature)):
            raise FeatureError(f"{what} takes features, got {type(f).__name__}: {f!r}")
    return split_features(items)[0]


def _until(table: pa.Table, src: nodes.Source, until: Any) -> int:
    if until is not None:
        return to_us(until, "until=")
    assert src.event_time is not None
    newest = pc.max(table.column(src.event_time)).as_py()
    return 0 if newest is None else to_us(newest, "the newest event time") + 1


def _ts_literal(us: int) -> Literal:
    return Literal(_from_us(us))


def _materialize_sinks(
    g: Group, prep: nodes.Node, src: nodes.Source, until: int, raw_from: dict[int, int], base: int | None
) -> list[nodes.Sink]:
    ts = src.event_time
    assert ts is not None
    time = Column(ts, T.Timestamp)
    events: nodes.Node = nodes.Filter(prep, Binary("<", time, _ts_literal(until)))
    keys = tuple(k for k, _ in g.keys)
    sinks = []
    for h in g.tiles():
        # Only the tiles a request from serve_from on can read (whole tiles: raw_from is aligned).
        recent: nodes.Node = nodes.Filter(events, Binary(">=", time, _ts_literal(raw_from[h])))
        calls = tuple(c for cs in _slot_calls(g.slots_of(h), time) for c in cs)
        if calls:
            sinks.append(nodes.Sink(nodes.TimeWindowAggregate(recent, keys, ts, TimeWindow(h, h), calls), f"tiles_{h}"))
        for col in sorted({s.value_col for s in g.slots_of(h) if s.func == "count_distinct"}):
            twa = nodes.TimeWindowAggregate(recent, (*keys, col), ts, TimeWindow(h, h), (AggCall("count", None, "n"),))
            sinks.append(nodes.Sink(twa, f"distinct_{h}_{col}"))
    if base is not None:
        before = nodes.Filter(events, Binary("<", time, _ts_literal(base)))
        life = g.lifetime_slots()
        calls = tuple(c for cs in _slot_calls(life, time) for c in cs)
        if calls:
            sinks.append(nodes.Sink(nodes.Aggregate(before, keys, calls), "base"))
        for col in sorted({s.value_col for s in life if s.func == "count_distinct"}):
            sinks.append(nodes.Sink(nodes.Aggregate(before, (*keys, col), (AggCall("count", None, "n"),)), f"base_distinct_{col}"))
    oldest = min(raw_from.values())
    sinks.append(nodes.Sink(nodes.Filter(events, Binary(">=", time, _ts_literal(oldest))), "events"))
    return sinks


def _key_texts(table: pa.Table, keys: Sequence[str]) -> list[str]:
    """Per row, its key as ``_key_text`` spells it (the text a request builds), made per
    distinct value and joined by Arrow rather than per row."""
    if table.num_rows == 0:
        return []
    parts = []
    for k in keys:
        col = table.column(k)
        distinct = pc.unique(col)
        texts = pa.array([json.dumps(v) for v in _plain(distinct)], pa.string())
        parts.append(texts.take(pc.index_in(col, value_set=distinct)))
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ",")
    return pc.binary_join_element_wise("[", joined, "]", "").to_pylist()


def _encode_group(
    g: Group, results: dict[str, pa.Table], raw_from: dict[int, int], base: int | None, records: dict[str, dict[str, str]]
) -> None:
    """The group's records (per key: tile fields and base) from the engine's results."""
    keys = [k for k, _ in g.keys]
    recs: dict[tuple[str, str], dict[str, Any]] = {}
    from relplan.ir.nodes import WINDOW_START

    for h in g.tiles():
        slots = g.slots_of(h)

        blobs: dict[str, dict[int, list[Any]]] = {}  # key -> tile start -> partials

        def rec(key: str, start: int) -> list[Any]:
            blob = blobs.get(key)
            if blob is None:
                blob = blobs[key] = {}
            got = blob.get(start)
            if got is None:
                got = blob[start] = [_empty(s.func) for s in slots]
            return got

        tiles = results.get(f"tiles_{h}")
        if tiles is not None and tiles.num_rows:
            ktext = _key_texts(tiles, keys)
            starts = _plain(tiles.column(WINDOW_START))
            per_slot = _engine_partials(slots, tiles)
            n = tiles.num_rows
            filled = [vals if vals is not None else [None] * n for vals in per_slot]
            for key, start, row in zip(ktext, starts, map(list, zip(*filled))):
                blob = blobs.get(key)
                if blob is None:
                    blob = blobs[key] = {}
                blob[start] = row
        for i, s in enumerate(slots):
            if s.func != "count_distinct":
                continue
            d = results[f"distinct_{h}_{s.value_col}"]
            if not d.num_rows:
                continue
            grouped = d.group_by([*keys, WINDOW_START], use_threads=False).aggregate([(s.value_col, "list")])
            for key, start, values in zip(_key_texts(grouped, keys), _plain(grouped.column(WINDOW_START)),
                                          _plain(grouped.column(f"{s.value_col}_list"))):
                rec(key, start)[i] = sorted(values)  # a set: stored in one order, whatever the engine's
        for key, blob in blobs.items():
            recs[(key, str(h))] = dict(sorted(blob.items()))  # tiles in time order, not the engine's row order
        # The events of the tiles an edge can fall in, per tile as columns: [times, values per slot].
        ev = results["events"]
        us = pc.cast(pc.cast(ev.column(g.time), pa.timestamp("us", tz="UTC")), pa.int64())
        keep = pc.greater_equal(us, raw_from[h])
        if not pc.any(keep).as_py():
            continue
        ev = ev.filter(keep)
        us_np = us.filter(keep).to_numpy()
        ev = ev.append_column(US_COL, pa.array(us_np)).append_column(START, pa.array(us_np - us_np % h))
        # Events in (key, tile, time, values) order: stored the same whatever the engine's row order.
        order = (*keys, START, US_COL, *dict.fromkeys(g.event_columns(h)))
        ev = ev.take(pc.sort_indices(ev, [(k, "ascending") for k in order]))
        texts = pa.array(_key_texts(ev, keys), pa.string())
        code = pc.index_in(texts, value_set=pc.unique(texts)).to_numpy()
        start = ev.column(START).to_numpy()
        cuts = np.flatnonzero((code[1:] != code[:-1]) | (start[1:] != start[:-1])) + 1
        bounds = [0, *cuts.tolist(), ev.num_rows]
        flat = [ev.column(US_COL).to_pylist()] + [_plain(ev.column(c)) for c in g.event_columns(h)]
        text_list = texts.to_pylist()
        start_list = start.tolist()
        for lo, hi in zip(bounds, bounds[1:]):
            recs[(text_list[lo], f"e:{h}:{start_list[lo]}")] = [c[lo:hi] for c in flat]
    if base is not None:
        life = g.lifetime_slots()
        b = results.get("base")
        rows: dict[str, list[Any]] = {}
        if b is not None and b.num_rows:
            per_slot = _engine_partials(life, b)
            for r, key in enumerate(_key_texts(b, keys)):
                p = rows.setdefault(key, [_empty(s.func) for s in life])
                for i, vals in enumerate(per_slot):
                    if vals is not None:
                        p[i] = vals[r]
        for i, s in enumerate(life):
            if s.func != "count_distinct":
                continue
            d = results[f"base_distinct_{s.value_col}"]
            if not d.num_rows:
                continue
            grouped = d.group_by(keys, use_threads=False).aggregate([(s.value_col, "list")])
            for key, values in zip(_key_texts(grouped, keys), _plain(grouped.column(f"{s.value_col}_list"))):
                rows.setdefault(key, [_empty(x.func) for x in life])[i] = sorted(values)
        for key, p in rows.items():
            recs[(key, "base")] = p
    for (key, fld), value in recs.items():
        records.setdefault(record_name(g.id, key), {})[fld] = _pack(value)


def _slot_calls(slots: Sequence[Slot], time: Column) -> list[tuple[AggCall, ...]]:
    """Per slot, the engine's aggregate calls of its partial (none for count_distinct: distinct rows)."""
    return [
        () if s.func == "count_distinct"
        else partials.engine_calls(s.func, Column(s.value_col, s.arg_dtype or T.Int64), time, f"s{i}_")
        for i, s in enumerate(slots)
    ]


def _engine_partials(slots: Sequence[Slot], table: pa.Table) -> list[list[Any] | None]:
    """Per slot, its partial per row of the engine's result (None: count_distinct's, made apart)."""
    return [
        partials.from_engine(s.func, [_plain(table.column(c.name)) for c in calls]) if calls else None
        for s, calls in zip(slots, _slot_calls(slots, Column("t", T.Timestamp)))
    ]


def _empty(func: str) -> Any:
    return 0 if func == "count" else None


# ---------------------------------------------------------------------------------------------
# push: new events as updates of tile fields, merged into what is stored


def _updates_of(st: GroupState, rows: pa.Table, updates: dict[tuple[str, str], Any]) -> None:
    """Per (record, field) touched by ``rows``: the partials of the new events per tile
    (a tiles field: tile start -> partials), of the base, or the new events themselves
    (an events field, "e:<h>:<start>")."""
    g = st.group
    keys = [k for k, _ in g.keys]
    ktext = _key_texts(rows, keys)
    times = _plain(rows.column(g.time))
    values = {c: _plain(rows.column(c)) for c in dict.fromkeys(s.value_col for s in g.slots)}
    life = g.lifetime_slots()
    for h in g.tiles():
        slots = g.slots_of(h)
        combine = [partials.combiner(s.func) for s in slots]
        event_cols = g.event_columns(h)
        cols = [values[c] for c in event_cols]
        at = [1 + event_cols.index(s.value_col) for s in slots]
        grouped: dict[tuple[str, int], list[list[Any]]] = defaultdict(list)
        for r, (key, t) in enumerate(zip(ktext, times)):
            grouped[(key, t - t % h)].append([t, *(c[r] for c in cols)])
        for (key, start), evs in grouped.items():
            record = record_name(g.id, key)
            if start < st.raw_from[h]:
                continue  # a tile no request from serve_from on reads
            blob = updates.setdefault((record, str(h)), {})
            p = blob.setdefault(start, [None] * len(slots))
            for i, s in enumerate(slots):
                p[i] = combine[i](p[i], partials.of_events(s.func, ((e[0], e[at[i]]) for e in evs)))
            cols_of = updates.setdefault((record, f"e:{h}:{start}"), [[] for _ in range(len(event_cols) + 1)])
            for c, values_ in zip(cols_of, zip(*evs)):
                c.extend(values_)
    if st.base is not None:
        grouped_b: dict[str, list[int]] = defaultdict(list)
        for r, (key, t) in enumerate(zip(ktext, times)):
            if t < st.base:
                grouped_b[key].append(r)
        for key, idx in grouped_b.items():
            p = updates.setdefault((record_name(g.id, key), "base"), [None] * len(life))
            for i, s in enumerate(life):
                part = partials.of_events(s.func, ((times[r], values[s.value_col][r]) for r in idx))
                p[i] = partials.combiner(s.func)(p[i], part)


def _merge(g: Group, fld: str, stored: str | None, update: Any) -> Any:
    """The stored field with the update merged in (events appended, partials combined)."""
    if fld == "base":
        slots = g.lifetime_slots()
        old = [_empty(s.func) for s in slots] if stored is None else _unpack(stored)
        return [partials.combiner(s.func)(a, b) for s, a, b in zip(slots, old, update)]
    if fld.startswith("e:"):  # events as columns: times, then values per slot
        return update if stored is None else [a + b for a, b in zip(_unpack(stored), update)]
    slots = g.slots_of(int(fld))
    blob = {} if stored is None else _unpack(stored)
    for start, new in update.items():
        old = blob.get(start) or [_empty(s.func) for s in slots]
        blob[start] = [partials.combiner(s.func)(a, b) for s, a, b in zip(slots, old, new)]
    return blob


def _is_live(g: Group, meta: dict[str, str]) -> bool:
    return any(json.loads(meta.get(f"c:{s.column}", '["",""]'))[0] == g.id for s in g.slots)


# ---------------------------------------------------------------------------------------------
# entity rows in, typed values out


def _entity_table(entity_rows: Any) -> pa.Table:
    if isinstance(entity_rows, list):
        if not all(isinstance(r, Mapping) for r in entity_rows):
            raise DataError("entity rows as a list must be dicts of column -> value, e.g. [{'account_id': 42}]")
        try:
            return pa.Table.from_pylist(entity_rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise DataError(f"entity rows cannot be read: {e}") from None
    return as_arrow(entity_rows, "entity rows")


def _cast_key(col: pa.ChunkedArray, name: str, dtype: T.DataType) -> pa.ChunkedArray:
    target = Schema.of([(name, dtype)]).to_arrow().field(0).type
    if col.type == target or pa.types.is_null(col.type):
        return col.cast(target)
    ok = {
        # Floats too: pandas keeps ints with a missing value as float64 (training data takes them);
        # a fractional key still fails the cast below.
        "Int64": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t), "Float64": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
        "String": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "Bool": pa.types.is_boolean,
        "Timestamp": pa.types.is_timestamp, "Date": pa.types.is_date,
    }[dtype.name]
    if not ok(col.type):
        raise DataError(f"entity rows' column {name!r} is {col.type}, but the feature's key {name!r} is {dtype}")
    try:
        return col.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"entity rows' column {name!r} cannot be read as {dtype}: {e}") from None

