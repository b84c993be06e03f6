"""The as-of join's fast path on DuckDB: one ASOF JOIN for every enriched column.

Each enriched column is its own newest non-NULL value at or before the row's time,
ties on time settled by the largest value (docs/semantics.md). Where the dimension's
enriched columns hold no NULL and no two versions share a key and a time, the newest
version's row holds every column's answer, and one ASOF JOIN selecting them all is
exact. ``with_proven_properties`` (backends/asof.py) proves both on the very Arrow
tables of a DuckDB run (a NULL count, a group-by of key and time) and marks the
AsOfJoin ``unique_times`` / ``no_nulls``; ``to_sql()`` never assumes either.

Checked here: the SQL a run sends to DuckDB has one ASOF JOIN exactly when the data
proves it (and one per column, with the ties settled, when a NULL or a tie is there);
its rows equal the general path's (the proof switched off), the reference
executor's and the brute force of tests/join_strategies.py, on hypothesis data with
and without NULLs and ties; the proof's own edges (filters, projections, key casts,
float keys, table names, large tables) one by one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import relplan as rp
import reference as ref
from relplan.backends import asof as asof_module
from relplan.backends import duckdb as duckdb_backend
from relplan.backends.asof import with_proven_properties
from relplan.backends.duckdb import DuckDBLowering
from relplan.compiler.dsl import DataFrame
from relplan.compiler.joins import relation
from relplan.ir import nodes
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.graph import walk
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame

from join_strategies import RIGHT_MASKS, STEP, STRINGS, Data, Dim, JoinSpec, Tx, keys_, small_ints, to_table

UTC = dt.timezone.utc
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,  # the SQL log: cleared before every run
    ],
)
BASE = ref.to_us(dt.datetime(2024, 1, 1, tzinfo=UTC))


# ---- running, with the SQL DuckDB was sent ---------------------------------------------

class _SqlLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "SQL:" in text:
            self.sql.append(text.split("SQL:", 1)[1])


@pytest.fixture
def sql_log() -> Iterator[_SqlLog]:
    log = logging.getLogger("relplan.engine.duckdb")
    handler, level = _SqlLog(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def run(plan: rp.Plan, tables: dict[str, pa.Table], log: _SqlLog, *, proof: bool = True) -> tuple[pa.Table, str]:
    """The plan's one output on DuckDB and the SQL that ran; ``proof=False``: the
    general path (nothing looked at in the tables)."""
    log.sql.clear()
    if proof:
        out = rp.execute(plan, engine="duckdb", tables=tables)
    else:
        saved = duckdb_backend.with_proven_properties
        duckdb_backend.with_proven_properties = lambda sinks, tables: sinks  # type: ignore[assignment]
        try:
            out = rp.execute(plan, engine="duckdb", tables=tables)
        finally:
            duckdb_backend.with_proven_properties = saved  # type: ignore[assignment]
    assert len(log.sql) == 1, log.sql
    return out, log.sql[0]


def asof_joins(sql: str) -> int:
    return sql.count("ASOF LEFT JOIN")


def merged(spec: JoinSpec) -> rp.Plan:
    """The merge's rows as the output (no feature: the join alone), optimized."""
    frame = spec.frame(DataFrame(Tx), DataFrame(Dim))
    return rp.optimize(rp.Plan((nodes.Sink(relation(frame), "rows"),), ()))


def at(step: int, us: int = 0) -> dt.datetime:
    return ref.from_us(BASE + step * STEP + us)


# ---- hand-picked: the path is taken exactly when the data proves it -------------------

TX_ROWS = [
    {"k": 1, "m": m, "v": 1, "x": 1.0, "s": "a", "ts": at(step)}
    for m in (1, 2, None, 9) for step in (0, 1, 2, 3)
]
DIM_ROWS = [
    {"m": 1, "cat": "a", "r": 1, "vt": at(0)},
    {"m": 1, "cat": "b", "r": 2, "vt": at(2)},  # exactly at an event's time: it counts (allow_exact_matches)
    {"m": 2, "cat": "c", "r": 3, "vt": at(1, 1)},
    {"m": None, "cat": "n", "r": 9, "vt": at(0)},  # a NULL key: in no frame
]


def test_one_asof_join_when_the_dimension_has_no_null_and_no_tie(sql_log: _SqlLog) -> None:
    plan = merged(JoinSpec("asof", "left"))
    assert "no_nulls" not in plan.explain() and "unique_times" not in plan.explain()  # never assumed in a plan
    assert asof_joins(plan.to_sql("duckdb")) == 3  # to_sql(): SQL that may run on other data
    d = Data(TX_ROWS, DIM_ROWS, [], [])
    tables = {"Tx": to_table("Tx", d.tx), "Dim": to_table("Dim", d.dim)}
    proven = with_proven_properties(plan.outputs, tables)
    assert "lowering=asof unique_times no_nulls" in rp.Plan(proven, ()).explain()
    out, sql = run(plan, tables, sql_log)
    assert asof_joins(sql) == 1 and "MAX(" not in sql and "COALESCE" not in sql
    ref.assert_same_rows(out.to_pylist(), JoinSpec("asof", "left").rows(d), ["ts", "m"])
    general, sql = run(plan, tables, sql_log, proof=False)
    assert asof_joins(sql) == 3 and "MAX(" in sql  # per column, the ties settled
    assert out.sort_by([("ts", "ascending"), ("m", "ascending")]).equals(general.sort_by([("ts", "ascending"), ("m", "ascending")]))


@pytest.mark.parametrize("change", ["newer NULL", "tie", "NULL and tie"])
def test_a_null_or_a_tie_keeps_the_general_path(sql_log: _SqlLog, change: str) -> None:
    dim = list(DIM_ROWS)
    if "NULL" in change:  # a newer version whose category is NULL: the older category stays the answer
        dim.append({"m": 1, "cat": None, "r": 5, "vt": at(3)})
    if "tie" in change:  # a second version of merchant 1 at one time: the largest value wins
        dim.append({"m": 1, "cat": "z", "r": 0, "vt": at(2)})
    d = Data(TX_ROWS, dim, [], [])
    tables = {"Tx": to_table("Tx", d.tx), "Dim": to_table("Dim", d.dim)}
    plan = merged(JoinSpec("asof", "left"))
    out, sql = run(plan, tables, sql_log)
    assert asof_joins(sql) == 3  # one per column
    assert ("MAX(" in sql) == ("tie" in change)  # the ties settled; where proven unique, not
    ref.assert_same_rows(out.to_pylist(), JoinSpec("asof", "left").rows(d), ["ts", "m"])
    rows = {(r["m"], ref.to_us(r["ts"])): r for r in out.to_pylist()}
    if "NULL" in change:  # the NULL category at step 3 leaves "b"; its risk 5 is the newest
        assert (rows[(1, BASE + 3 * STEP)]["cat"], rows[(1, BASE + 3 * STEP)]["r"]) == ("b" if change == "newer NULL" else "z", 5)
    if change == "tie":
        assert (rows[(1, BASE + 2 * STEP)]["cat"], rows[(1, BASE + 2 * STEP)]["r"]) == ("z", 2)  # each column's largest


def test_training_data_latest_values_take_one_asof_join(sql_log: _SqlLog) -> None:
    """pitc_join_features runs through the same backend: latest values of one source
    (any TTLs, one edge) take one ASOF JOIN; a spine row with a NULL key or time gets
    NULLs."""
    dim = to_table("Dim", DIM_ROWS)
    spine = pa.table({
        "m": pa.array([1, 1, 2, None, 1, 9], pa.int64()),
        "at": pa.array([at(2), at(3), at(2), at(3), None, at(3)], pa.timestamp("us", tz="UTC")),
    })
    feats = [rp.latest(Dim, "cat", by="m"), rp.latest(Dim, "r", by="m", ttl="40s")]
    sql_log.sql.clear()
    got = rp.pitc_join_features(spine, feats, {"Dim": dim})
    assert len(sql_log.sql) == 1 and asof_joins(sql_log.sql[0]) == 1
    assert got.equals(rp.pitc_join_features(spine, feats, {"Dim": dim}, engine="reference"))
    assert got.column("latest_cat").to_pylist() == ["a", "b", "c", None, None, None]  # at(2) itself: not counted
    assert got.column("latest_r_40s").to_pylist() == [None, 2, 3, None, None, None]  # 1m old is past 40s


# ---- the proof's edges, on the IR ----------------------------------------------------------

SPINE = nodes.Source("S", Schema.of([("k", T.Int64), ("t", T.Timestamp)]), "t")
EVENTS = nodes.Source("E", Schema.of([("k", T.Int64), ("v", T.Float64), ("w", T.String), ("t", T.Timestamp)]), "t")
ORDER = Column("t", T.Timestamp)


def join(events: nodes.Node = EVENTS, spine: nodes.Node = SPINE, **kw: Any) -> nodes.AsOfJoin:
    calls = kw.pop("calls", (AggCall("last", Column("v", T.Float64), "lv", order=ORDER), AggCall("last", Column("w", T.String), "lw", order=ORDER)))
    frame = kw.pop("frame", Frame(None))
    return nodes.AsOfJoin(spine, events, (("k", "k"),), "t", "t", ((frame, calls),), **{"lowering": "asof", **kw})


def events_table(ks: list[int | None], vs: list[float | None], steps: list[int]) -> pa.Table:
    return pa.table({
        "k": pa.array(ks, pa.int64()), "v": pa.array(vs, pa.float64()), "w": pa.array(["x"] * len(ks)),
        "t": pa.array([at(s) for s in steps], pa.timestamp("us", tz="UTC")),
    })


def proven(n: nodes.AsOfJoin, table: Any) -> tuple[bool, bool]:
    out = with_proven_properties((nodes.Sink(n, "o"),), {"E": table})
    (j,) = [m for m in walk(out) if isinstance(m, nodes.AsOfJoin)]
    return j.unique_times, j.no_nulls


GOOD = events_table([1, 2, 1, 2], [1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1])


def test_the_proof_on_plain_filtered_and_projected_events() -> None:
    assert proven(join(), GOOD) == (True, True)
    assert proven(join(), events_table([1, 2, 1], [1.0, None, 3.0], [0, 0, 1])) == (True, False)  # a NULL
    assert proven(join(), events_table([1, 1, 2], [1.0, 2.0, 3.0], [0, 0, 1])) == (False, True)  # a tie
    # A NULL key's rows group together: reported as a tie, only ever costing the settling.
    assert proven(join(), events_table([None, None], [1.0, 2.0], [0, 0])) == (False, True)
    # A filter keeps both properties of the rows it keeps: proven on the raw table.
    filtered = nodes.Filter(EVENTS, Binary(">", Column("v", T.Float64), Literal(0.0)))
    assert proven(join(filtered), GOOD) == (True, True)
    # Plain columns renamed: traced to the table's; a computed argument is not proven non-NULL.
    renamed = nodes.Project(EVENTS, (("k", Column("k", T.Int64)), ("v", Column("w", T.String)), ("w", Column("v", T.Float64)), ("t", ORDER)))
    calls = (AggCall("last", Column("v", T.String), "lv", order=ORDER),)
    assert proven(join(renamed, calls=calls), events_table([1, 2], [None, 1.0], [0, 0])) == (True, True)  # v is w there
    doubled = nodes.Project(EVENTS, (("k", Column("k", T.Int64)), ("v", Binary("*", Column("v", T.Float64), Literal(2.0))), ("t", ORDER)))
    assert proven(join(doubled, calls=(AggCall("last", Column("v", T.Float64), "lv", order=ORDER),)), GOOD) == (True, False)
    # The event time and keys need no look (an event with a NULL one is in no frame).
    calls = (AggCall("last", ORDER, "lt", order=ORDER), AggCall("last", Column("k", T.Int64), "lk", order=ORDER))
    assert proven(join(calls=calls), events_table([1, None], [None, None], [0, 1])) == (True, True)


def test_what_the_proof_never_claims() -> None:
    # A table name (the engine's own table), another lowering, a table without the column.
    assert proven(join(), "E_table") == (False, False)
    assert proven(join(lowering="union"), GOOD) == (False, False)
    assert proven(join(), GOOD.drop_columns(["w"])) == (True, False)
    # Keys cast to the spine's type (Int64 as Float64 may merge two), or float keys
    # (-0.0 and 0.0): never proven unique; NULLs still proven absent.
    float_spine = nodes.Source("S", Schema.of([("k", T.Float64), ("t", T.Timestamp)]), "t")
    assert proven(join(spine=float_spine), GOOD) == (False, True)
    # Declared facts stay.
    assert proven(join(unique_times=True), events_table([1, 1], [1.0, 2.0], [0, 0])) == (True, True)


def test_large_tables_are_checked_only_in_time_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asof_module, "UNIQUE_CHECK_MAX_ROWS", 3)
    assert proven(join(), GOOD) == (True, True)  # in time order, the run of equal times grouped
    assert proven(join(), GOOD.take([2, 0, 1, 3])) == (False, True)  # out of order: cannot tell cheaply
    assert proven(join(), events_table([1, 2, 3, 4], [1.0] * 4, [3, 2, 1, 0])) == (False, True)
    monkeypatch.setattr(asof_module, "TIED_RUNS_MAX_ROWS", 3)
    assert proven(join(), GOOD) == (False, True)  # too many rows in runs of equal times
    assert proven(join(), events_table([1, 1, 1, 1], [1.0] * 4, [0, 1, 2, 3])) == (True, True)  # strictly increasing


def test_one_asof_join_per_filter_and_edge() -> None:
    """Aggregates with different masks or edges need their own newest event: one ASOF
    JOIN each, still no settling; TTLs share one (checked on the time found)."""
    positive = Binary(">", Column("v", T.Float64), Literal(0.0))
    windows = (
        (Frame(None), (AggCall("last", Column("v", T.Float64), "a", order=ORDER), AggCall("last", Column("w", T.String), "b", order=ORDER))),
        (Frame(60_000_000), (AggCall("last", Column("w", T.String), "c", order=ORDER),)),
        (Frame(None, upper_inclusive=False), (AggCall("last", Column("v", T.Float64), "d", order=ORDER),)),
    )
    n = nodes.AsOfJoin(SPINE, EVENTS, (("k", "k"),), "t", "t", windows, lowering="asof", unique_times=True, no_nulls=True)
    n2 = nodes.AsOfJoin(SPINE, EVENTS, (("k", "k"),), "t", "t", ((Frame(None), (
        AggCall("last", Column("v", T.Float64), "a", order=ORDER), AggCall("last", Column("w", T.String), "b", filter=positive, order=ORDER))),),
        lowering="asof", unique_times=True, no_nulls=True)
    assert "unique_times no_nulls" in rp.Plan((nodes.Sink(n, "o"),), ()).explain()
    assert asof_joins(DuckDBLowering().to_sql((nodes.Sink(n, "o"),))) == 2
    assert asof_joins(DuckDBLowering().to_sql((nodes.Sink(n2, "o"),))) == 2
    assert asof_joins(DuckDBLowering().to_sql((nodes.Sink(join(unique_times=True), "o"),))) == 2  # NULLs not ruled out


# ---- hypothesis: the same rows on every path ----------------------------------------------

@st.composite
def dimensions(draw: st.DrawFn) -> Data:
    """Events and versions; NULL values and ties on key and time now and then, so the
    proof holds in some examples and fails in others."""
    nulls = draw(st.booleans())
    ties = draw(st.booleans())

    def value(strategy: st.SearchStrategy[Any]) -> Any:
        return None if nulls and draw(st.integers(0, 3)) == 0 else draw(strategy)

    def time(lo: int, hi: int) -> dt.datetime:
        return at(draw(st.integers(lo, hi)), draw(st.sampled_from((0, 0, -1, 1))))

    tx = [
        {"k": draw(keys_), "m": draw(keys_), "v": draw(small_ints), "x": 1.0, "s": "a", "ts": time(0, 5)}
        for _ in range(draw(st.integers(0, 10)))
    ]
    dim = [
        {"m": draw(keys_), "cat": value(st.sampled_from(STRINGS[:3])), "r": value(small_ints), "vt": time(-3, 6)}
        for _ in range(draw(st.integers(0, 10)))
    ]
    if ties and dim:
        for r in draw(st.lists(st.sampled_from(dim), min_size=1, max_size=2)):
            dim.append({**r, "cat": value(st.sampled_from(STRINGS[:3])), "r": value(small_ints)})
    return Data(tx, draw(st.permutations(dim)), [], [])


def proof_holds(dim: list[dict[str, Any]]) -> bool:
    keys = [(r["m"], r["vt"]) for r in dim]
    return len(set(keys)) == len(keys) and all(r["cat"] is not None and r["r"] is not None for r in dim)


@SETTINGS
@given(
    d=dimensions(),
    how=st.sampled_from(("left", "inner")),
    right_mask=st.sampled_from(RIGHT_MASKS),
    tolerance=st.sampled_from((None, "30s", "2m")),
    exact=st.booleans(),
)
def test_the_fast_path_gives_the_general_paths_rows(
    sql_log: _SqlLog, d: Data, how: str, right_mask: str, tolerance: str | None, exact: bool
) -> None:
    spec = JoinSpec("asof", how, right_mask=right_mask, tolerance=tolerance, exact=exact)
    plan = merged(spec)
    tables = {"Tx": to_table("Tx", d.tx), "Dim": to_table("Dim", d.dim)}
    note(repr(d))
    event(f"proven: {proof_holds(d.dim)}, rows matched: {bool(d.tx and d.dim)}")
    fast, sql = run(plan, tables, sql_log)
    assert (asof_joins(sql) == 1) == proof_holds(d.dim), sql
    general, general_sql = run(plan, tables, sql_log, proof=False)
    assert asof_joins(general_sql) == 3
    expected = spec.rows(d)
    ref.assert_same_rows(fast.to_pylist(), expected, ["ts", "k", "m", "v"])
    ref.assert_same_rows(general.to_pylist(), expected, ["ts", "k", "m", "v"])
    reference = rp.execute(plan, engine="reference", tables=tables)
    ref.assert_same_rows(reference.to_pylist(), expected, ["ts", "k", "m", "v"])
