"""Point-in-time-correct training data: features joined onto a spine, as of each row's time.

    train = rp.pitc_join_features(
        spine,                                   # keys, an inference time, labels, anything
        features=[failed_1d, rp.latest(Transactions, "amt", by="cc_num", ttl="30d")],
        tables={"Transactions": tx},
        engine="duckdb",
    )

The result is the spine, row for row and in its order (duplicates kept, every
column untouched), plus one column per feature holding its value as of the
row's inference time t. The semantics (docs/training-data.md):

- **Events at exactly t are not counted** by default (``inclusive=False``): the
  value is the one an online store would have served an instant before t, the
  feature's per-event value at t - 1us. A spine row is usually made from an event
  (a transaction to score, with its label); with its own event counted, every
  feature would see the event it is meant to predict. ``inclusive=True`` counts
  them: a sliding window w then holds ``t - w < ts <= t``, otherwise ``t - w <= ts < t``.
- **TTL**: ``rp.latest(source, column, by=..., ttl="30d")`` is NULL when the key's
  newest value is older than the TTL; a windowed feature is bounded by its window.
- **Ties**: among events of a key with equal times, latest() takes the largest
  non-NULL value (last()'s rule), so the result never depends on row order.
- **Missing keys**: a spine row whose key or time is NULL gets NULL for every
  feature (a count too); a key without events gets each aggregate's value over no
  rows (count 0, NULL otherwise). No spine row is ever dropped or repeated.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from relplan.backends.arrow_io import as_arrow, conform_table
from relplan.backends.asof import PREFIX, ROW
from relplan.compiler import progress as _progress
from relplan.compiler.compile import _check_features, _key_columns
from relplan.compiler.derived import DerivedFeature, check_request_columns, split_features
from relplan.compiler.dsl import FeatureBody
from relplan.compiler.location import user_location
from relplan.compiler.plan import Plan
from relplan.compiler.source import Source
from relplan.compiler.transformation import Feature
from relplan.compiler.windowspec import WindowSpec, lifetime
from relplan.ir import nodes
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import DataError, EngineError, FeatureError, RelplanError, SchemaError
from relplan.ir.expr import Column
from relplan.ir.schema import Field, Schema
from relplan.ir.types import from_arrow
from relplan.ir.windows import Frame, parse_duration
from relplan.rules import OptimizerConfig, SourceStats, Statistics

_log = logging.getLogger("relplan.pitc")

SPINE = "pitc_spine"  # the spine's source name in the plan (and its table in the SQL)
OUTPUT = "training_data"


def latest(
    source: type[Source], column: str, *, by: str | Iterable[str], ttl: str | dt.timedelta | None = None, name: str | None = None
) -> Feature:
    """The newest non-NULL value of ``column`` per key ``by`` (NULL once older than ``ttl``)."""
    where = user_location()
    if not (isinstance(source, type) and issubclass(source, Source)):
        raise FeatureError(f"rp.latest() takes a source class such as Transactions, got {source!r}", where=where)
    src = source.node()
    keys = (by,) if isinstance(by, str) else tuple(by)
    for k in (column, *keys):
        src.columns.field(k, context=f"(in rp.latest over {src.name})")
    if src.event_time is None:
        raise FeatureError(f"rp.latest() needs a source with an event time; {src.name} has none", where=where)
    spec: WindowSpec = lifetime() if ttl is None else WindowSpec("sliding", parse_duration(ttl, what="ttl"))
    call = AggCall("last", Column(column, src.columns.dtype(column)), "_", order=Column(src.event_time, T.Timestamp))
    body = FeatureBody(source, tuple((k, Column(k, src.columns.dtype(k))) for k in keys), spec, None, ((None, call),), where)
    fname = name if name is not None else f"latest_{column}" + ("" if ttl is None else f"_{spec.label}")
    return Feature(fname, "latest", body, where, where)


def pitc_plan(
    spine: Any,
    features: Feature | DerivedFeature | Iterable[Feature | DerivedFeature],
    *,
    time: str | None = None,
    keys: Mapping[str, str] | None = None,
    inclusive: bool = False,
    tables: Mapping[str, Any] | None = None,
    statistics: Statistics | None = None,
    config: OptimizerConfig | None = None,
    catalog: Any = None,
) -> Plan:
    """The optimized plan of a point-in-time join (``plan.explain()`` shows each join's
    lowering; ``plan.to_sql(engine)`` its SQL over the table ``pitc_spine``, which
    holds the spine's row number ``__pitc_row``, keys and time).

    ``spine``: a table (pyarrow, pandas) or just its schema. ``tables`` or
    ``statistics`` let the optimizer choose lowerings by cost. Derived features
    (``rp.derived``) are a Project over the joins' output, reading the spine's
    columns for their request fields."""
    spine = spine if isinstance(spine, pa.Schema) else as_arrow(spine, "spine")
    feats, derived = split_features(_check_features(features, catalog))
    return _plan(spine, feats, time, keys, inclusive, tables, statistics, config, derived=derived)[0]


def pitc_spine(spine: Any, plan: Plan) -> pa.Table:
    """The table ``pitc_spine`` that ``plan.to_sql(...)`` of a ``pitc_plan`` reads: the
    spine's row number ``__pitc_row``, its keys and its time, checked and typed. The
    SQL's rows carry ``__pitc_row``: sort by it for the spine's order."""
    from relplan.ir.graph import walk

    source = next((n for n in walk(plan.outputs) if isinstance(n, nodes.Source) and n.name == SPINE), None)
    if source is None:
        raise RelplanError("pitc_spine() takes a plan from rp.pitc_plan(...)")
    return _spine_rows(as_arrow(spine, "spine"), source)


def pitc_join_features(
    spine: Any,
    features: Feature | DerivedFeature | Iterable[Feature | DerivedFeature],
    tables: Mapping[str, Any] | None = None,
    engine: str = "duckdb",
    *,
    time: str | None = None,
    keys: Mapping[str, str] | None = None,
    inclusive: bool = False,
    statistics: Statistics | None = None,
    config: OptimizerConfig | None = None,
    catalog: Any = None,
    progress: bool | None = None,
    **options: Any,
) -> pa.Table:
    """The spine, row for row, plus each feature's value as of the row's time.

    ``features``: features, and derived features (``rp.derived``): the features a
    derived one reads are computed as of the row's time (each by its own keys; those
    not asked for are not returned), then its expression over them and over the
    spine's columns named like its request fields (``rp.Request``).

    ``time``: the spine's inference-time column (default: its only timestamp column).
    ``keys``: feature key -> spine column, where the names differ. ``inclusive``:
    count events at exactly the inference time (default False: they may be the
    label's own event). ``progress``: a bar of its steps while it runs (default: on a
    terminal, for work of a second or more; see ``rp.set_progress``). ``options`` go
    to the engine's backend (Flink: ``table_env=``/``session=`` a batch
    TableEnvironment of yours; Spark: ``session=``)."""
    from relplan.backends import get_backend
    from relplan.compiler.execute import _inputs

    # DuckDB's ASOF JOIN skips settling ties where the events it is given have none;
    # Spark and Flink have no such lowering, so nothing is checked for them.
    check_ties = engine == "duckdb" and tables is not None
    with _progress.Steps("training data", 5 if check_ties else 4, _log, progress=progress) as steps:
        steps.step("planning")
        table = as_arrow(spine, "spine")
        items = _check_features(features, catalog)
        feats, derived = split_features(items)
        if tables is not None and not isinstance(tables, Mapping):
            raise DataError(f"tables= takes a dict of source name to table, e.g. {{'Transactions': arrow_table}}, got {type(tables).__name__}")
        # Arrow once: the tie check below and the run read the same tables (a name stays a name).
        given = {name: v if isinstance(v, str) else as_arrow(v, name) for name, v in (tables or {}).items()}
        plan, spine_source = _plan(
            table, feats, time, keys, inclusive, None if tables is None else given, statistics, config,
            check_ties=check_ties, steps=steps, derived=derived,
        )
        backend = get_backend(engine, **options)
        if engine == "flink" and backend.mode != "batch":
            if "mode" in options:
                raise RelplanError(
                    f"training data is computed in batch; pitc_join_features() on Flink takes mode='batch', got {options['mode']!r}"
                )
            raise RelplanError(
                "training data is computed in batch; pitc_join_features() on Flink takes a TableEnvironment in batch "
                "mode (EnvironmentSettings.in_batch_mode()), but the one passed is in streaming mode"
            )
        if SPINE in given:
            raise DataError(f"tables= has a table named {SPINE!r}, the name relplan gives the spine; rename it")
        given[SPINE] = _spine_rows(table, spine_source)
        steps.step(f"running on {engine}")
        if steps.shown:
            backend.on_step = steps.note  # the engine's own steps: inputs, the query, fetching
        computed = backend.run(plan.outputs, _inputs(plan, given, backend))[OUTPUT]
        steps.step("assembling")
        out = _assemble(table, computed, _output_columns(items))
    if steps.logged:
        _log.info(
            "training data on %s: %d spine rows, %d feature column(s), in %.1f ms (%s)", engine, table.num_rows,
            out.num_columns - table.num_columns, steps.elapsed_ms, steps.breakdown(),
        )
    return out


def _output_columns(items: list[Any]) -> list[str]:
    """The columns training data adds, in the order asked: each feature's, each derived one."""
    return [c for f in items if isinstance(f, (Feature, DerivedFeature)) for c in f.columns]


def _spine_rows(table: pa.Table, source: nodes.Source) -> pa.Table:
    """The columns of the spine the engine needs, and each row's number."""
    cols = {f.name: table.column(f.name) for f in source.columns if f.name != ROW}
    target = source.columns.to_arrow()
    for name, col in cols.items():
        want = target.field(name).type
        if col.type != want and pa.types.is_integer(col.type) and pa.types.is_floating(want):
            cols[name] = col.cast(want)  # a request field declared Float64, given as integers
    cols[ROW] = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return conform_table(source, pa.table(cols))


def _assemble(spine: pa.Table, computed: pa.Table, columns: list[str]) -> pa.Table:
    """The spine as given plus the feature columns, put back in spine order by row number."""
    n = spine.num_rows
    rows = computed.column(ROW).to_numpy()
    # Each row number once: the lowering's promise (exactly the spine's rows) is
    # checked, never assumed. Then the inverse permutation puts them in spine order.
    seen = np.zeros(n, dtype=bool)
    ok = computed.num_rows == n and (n == 0 or (rows.min() >= 0 and rows.max() < n))
    if ok:
        seen[rows] = True
        ok = bool(seen.all())
    if not ok:
        raise EngineError(
            f"the point-in-time join returned {computed.num_rows} rows for a spine of {n}; "
            "this is a relplan bug, please report it with the plan (rp.pitc_plan(...).explain())"
        )
    order = np.empty(n, dtype=np.int64)
    order[rows] = np.arange(n, dtype=np.int64)
    out = spine
    for c in columns:
        out = out.append_column(c, computed.column(c).take(order))
    return out


def _plan(
    spine: pa.Table | pa.Schema,
    feats: list[Feature],
    time: str | None,
    keys: Mapping[str, str] | None,
    inclusive: bool,
    tables: Mapping[str, Any] | None,
    statistics: Statistics | None,
    config: OptimizerConfig | None,
    check_ties: bool = False,
    steps: Any = None,
    derived: list[DerivedFeature] | None = None,
) -> tuple[Plan, nodes.Source]:
    """The optimized plan and the spine's source. ``check_ties``: look in ``tables`` for
    sources whose latest values have no ties to settle (``_no_ties``); only for a run on
    those very tables, never for SQL that may run on other data. ``derived``: computed
    by a Project over the joins' output (``feats`` holds their inputs)."""
    derived = derived or []
    from relplan.compiler.optimize import optimize
    from relplan.compiler.statistics import measure_statistics

    # Only the keys and the time go to the engine: other columns (labels, anything,
    # of any arrow type) stay in the caller's table.
    arrow_schema = spine if isinstance(spine, pa.Schema) else spine.schema
    time = _time_column(arrow_schema, time)
    spine_names = arrow_schema.names
    key_map = dict(keys or {})
    for c in spine_names:
        if c.startswith(PREFIX):
            raise SchemaError(f"spine column {c!r} starts with {PREFIX!r}, which relplan keeps for itself; rename it")
    groups: dict[tuple[Any, ...], list[Feature]] = {}
    for f in feats:
        if not f.per_event:
            raise FeatureError(
                f"feature {f.name!r} has window {f.spec!r}, which gives one row per window, not a value at any "
                "time: pitc_join_features() takes sliding and lifetime windows, and rp.latest(...)",
                where=f.defined_at,
            )
        for c in f.columns:
            if c in spine_names:
                raise FeatureError(f"feature {c!r} has the name of a spine column; pass name=... to rename it", where=f.defined_at)
        # One point-in-time join per row set and keys: the source's events, or the rows a
        # merge made of them (each event enriched as of its own time); the event time is
        # the source's either way.
        groups.setdefault((f.body.input_node(), f.body.keys), []).append(f)
    for d in derived:
        if d.name in spine_names:
            raise FeatureError(f"derived feature {d.name!r} has the name of a spine column; pick another name", where=d.defined_at)
    spine_keys = sorted({key_map.get(k, k) for f in feats for k in f.keys})
    for f in feats:
        for k in f.keys:
            col = key_map.get(k, k)
            if col not in spine_names:
                raise FeatureError(
                    f"feature {f.name!r} is keyed by {k!r}, which the spine lacks (its columns: {spine_names}); "
                    f"add the column, or map it with keys={{{k!r}: '<spine column>'}}",
                    where=f.defined_at,
                )
    fields = [Field(ROW, T.Int64)]
    fields += [Field(k, from_arrow(arrow_schema.field(k).type, column=k)) for k in spine_keys if k != time]
    fields.append(Field(time, T.Timestamp))
    fields += _request_fields(arrow_schema, derived, {f.name for f in fields})
    spine_source = nodes.Source(SPINE, Schema(tuple(fields)))
    node: nodes.Node = spine_source
    for (rows, _), members in groups.items():
        src = members[0].source.node()
        assert src.event_time is not None
        try:
            events, keys_of = _key_columns(rows, [(members[0].name, members[0].body)])
            ev_keys = keys_of[members[0].name]
            on = tuple((key_map.get(k, k), ek) for k, ek in zip(members[0].keys, ev_keys))
            newest: dict[Frame, list[AggCall]] = {}
            windowed: dict[Frame, list[AggCall]] = {}
            for f in members:
                frame = _frame(f.spec, inclusive)
                for col_name, (_, call) in zip(f.columns, f.body.aggs):
                    target = newest if call.func == "last" else windowed
                    target.setdefault(frame, []).append(replace(call, name=col_name, filter=f.body.mask))
            for calls in (newest, windowed):
                if calls:
                    windows = tuple((fr, tuple(c)) for fr, c in calls.items())
                    node = nodes.AsOfJoin(node, events, on, time, src.event_time, windows, row_id=ROW)
        except RelplanError as e:
            raise e.at(members[-1].defined_at) from None
    if derived:
        node = _with_derived(node, derived)
    plan = Plan((nodes.Sink(node, OUTPUT),), tuple(feats))
    if statistics is None and tables is not None and _needs_statistics(plan):
        # Only what the lowering choice reads: rows, distinct keys, time spans; of the
        # source tables only (a merge's rows are no table: its sources are measured).
        from relplan.ir.graph import walk

        wanted: dict[str, list[str]] = {}
        for rows, body_keys in groups:
            if isinstance(rows, nodes.Source):
                wanted.setdefault(rows.name, [rows.event_time]).extend(k for k, _ in body_keys)  # type: ignore[list-item]
                continue
            for s in walk([rows]):
                if isinstance(s, nodes.Source):
                    own = [k for k, _ in body_keys if k in s.columns]
                    wanted.setdefault(s.name, [s.event_time] if s.event_time else []).extend(own)
        wanted = {n: list(dict.fromkeys(cs)) for n, cs in wanted.items()}
        measured = {name: tables[name] for name in wanted if name in tables}
        if isinstance(spine, pa.Table):
            measured[SPINE] = _spine_rows(spine, spine_source)
            wanted[SPINE] = [time]
        statistics = measure_statistics(measured, columns=wanted)
    if check_ties and tables is not None:
        if steps is not None:
            steps.step("checking ties")
        statistics = _no_ties(statistics, groups, tables, spine_source, key_map)
    if steps is not None:
        steps.step("optimizing")
    return optimize(plan, config, statistics=statistics), spine_source


def _no_ties(
    statistics: Statistics | None,
    groups: Mapping[tuple[Any, ...], list[Feature]],
    tables: Mapping[str, Any],
    spine: nodes.Source,
    key_map: Mapping[str, str],
) -> Statistics | None:
    """``statistics`` plus (key, event time) as unique for each source of latest values
    whose table shows it in one cheap pass (``_unique_in_time_order``): the ASOF JOIN's
    match is then the answer, and settling ties (a second pass over the events, a
    third of the ASOF JOIN's own time) is skipped. Where the pass cannot tell, the
    statistics stay as they were and the ties are settled in SQL."""
    for (src, body_keys), members in groups.items():
        if not isinstance(src, nodes.Source):
            continue  # a merge's rows: no table to look in; the ties are settled in SQL
        table = tables.get(src.name)
        # Keys read as they are: a derived key, or one cast to the spine key's type (an
        # Int64 as a Float64 may merge two keys), is not what the table holds.
        plain = all(
            isinstance(e, Column) and e.name == k and spine.columns.dtype(key_map.get(k, k)) == e.dtype for k, e in body_keys
        )
        newest = any(call.func == "last" for f in members for _, call in f.body.aggs)
        if not (newest and plain and isinstance(table, pa.Table)):
            continue
        assert src.event_time is not None
        columns = (*(k for k, _ in body_keys), src.event_time)
        known = None if statistics is None else statistics.of(src.name)
        if known is not None and known.is_unique(columns) or not _unique_in_time_order(table, columns):
            continue
        stats = known if known is not None else SourceStats(rows=table.num_rows)
        others = {} if statistics is None else dict(statistics.sources)
        others[src.name] = replace(stats, unique=(*stats.unique, columns))
        statistics = Statistics(others)
    return statistics


def _unique_in_time_order(table: pa.Table, columns: tuple[str, ...]) -> bool:
    """Whether no two rows share the values of ``columns`` (keys, then the event time),
    told cheaply (``backends.asof.unique_rows``: one vectorized pass where the rows are
    in time order, as an event log usually is). False wherever it cannot tell cheaply,
    or the table is not as the source declares (conform_table names that problem)."""
    from relplan.backends.asof import unique_rows

    if any(c not in table.column_names for c in columns):
        return False
    if any(pa.types.is_floating(table.schema.field(c).type) for c in columns[:-1]):
        return False  # -0.0 and 0.0: one key to the engine, two groups to Arrow
    return unique_rows(table, list(columns))


def _request_fields(arrow_schema: pa.Schema, derived: list[DerivedFeature], taken: set[str]) -> list[Field]:
    """The spine's columns the derived features read as request fields, as declared
    (each checked against the spine with ``check_request_columns``)."""
    if not derived:
        return []
    known = []
    for f in arrow_schema:
        try:
            known.append(Field(f.name, from_arrow(f.type, column=f.name)))
        except RelplanError:
            continue  # a column of a type relplan does not read (labels, anything): never a field
    spine = Schema(tuple(known))
    out: dict[str, Field] = {}
    for d in derived:
        check_request_columns(d, spine, "the spine")
        for r in d.request:
            if r.name in taken:
                if spine.dtype(r.name) != r.dtype:
                    raise FeatureError(
                        f"derived feature {d.name} reads request field {r.request}.{r.name} as {r.dtype}, but the "
                        f"spine's column {r.name!r} is also a key or the time, of type {spine.dtype(r.name)}",
                        where=d.defined_at,
                    )
                continue
            other = out.setdefault(r.name, Field(r.name, r.dtype))
            if other.dtype != r.dtype:
                raise FeatureError(
                    f"request field {r.name!r} is read as {other.dtype} and as {r.dtype} by derived features; "
                    "declare it with one type",
                    where=d.defined_at,
                )
    return list(out.values())


def _with_derived(node: nodes.Node, derived: list[DerivedFeature]) -> nodes.Node:
    """The point-in-time join's rows plus each derived feature's column: one Project of
    its expression over the input features' values and the spine's request fields."""
    schema = node.schema
    for d in derived:
        if d.name in schema:
            raise FeatureError(
                f"derived feature {d.name!r} has the name of a spine column or feature; pick another name",
                where=d.defined_at,
            )
    exprs = tuple((f.name, Column(f.name, f.dtype)) for f in schema) + tuple((d.name, d.expr) for d in derived)
    try:
        return nodes.Project(node, exprs)
    except RelplanError as e:
        raise e.at(derived[-1].defined_at) from None


def _needs_statistics(plan: Plan) -> bool:
    from relplan.backends.asof import newest_event_only
    from relplan.ir.graph import walk

    return any(isinstance(n, nodes.AsOfJoin) and not newest_event_only(n) for n in walk(plan.outputs))


def _time_column(schema: pa.Schema, time: str | None) -> str:
    if time is not None:
        if time not in schema.names:
            raise SchemaError(f"the spine has no column {time!r} (its columns: {schema.names}) for the inference time")
        if not pa.types.is_timestamp(schema.field(time).type):
            got = schema.field(time).type
            raise SchemaError(f"the spine's time column {time!r} is {got}, not a timestamp")
        return time
    times = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if len(times) != 1:
        raise SchemaError(
            f"the spine has {len(times)} timestamp columns {times}: pass time='<column>' to say which is the inference time"
        )
    return times[0]


def _frame(spec: WindowSpec, inclusive: bool) -> Frame:
    """The feature's frame at a spine row: as of t (inclusive), or as of an instant before t.

    As of t it is the feature's own frame, ``(t - w, t]`` or (closed="both") ``[t - w, t]``.
    An instant (1us) before t, ``(t - 1us - w, t - 1us]`` is ``[t - w, t)`` in whole
    microseconds, and ``[t - 1us - w, t - 1us]`` is ``[t - w - 1us, t)``."""
    if spec.kind != "sliding":
        return Frame(None) if inclusive else Frame(None, upper=0, upper_inclusive=False)
    assert spec.size is not None
    if inclusive:
        return spec.frame()
    return Frame(spec.size + (1 if spec.lower_inclusive else 0), lower_inclusive=True, upper=0, upper_inclusive=False)
