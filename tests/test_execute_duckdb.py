"""rp.execute on DuckDB with the connection kept per process: no state leaks from one
call to the next (tables, settings), threads and forked children get correct results,
and the fast paths for inputs and results give exactly what the general ones give."""

from __future__ import annotations

import os
import pickle
import select
import threading
import time
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference as ref
import relplan as rp
from relplan.backends import duckdb_connections
from relplan.backends.arrow_io import conform_table, in_ir_types
from relplan.backends.duckdb import DuckDBBackend, _naive
from relplan.ir.errors import DataError, EngineError, RelplanError
from strategies import SOURCE_COLUMNS, Events, event_rows, feature_specs, per_event_windows, to_table

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENTS = Events.__relplan_source__  # the Source node


@rp.transformation
def v_sum(e: Events, wspec: rp.WindowSpec) -> Any:
    return e.groupby("k")["v"].window(wspec).sum()


def rows_at(*values: tuple[int, int]) -> pa.Table:
    """Events rows (k, v) one second apart."""
    return to_table([
        {"k": k, "v": v, "x": None, "s": None, "b": None, "ts": ref.from_us(i * 1_000_000)}
        for i, (k, v) in enumerate(values)
    ])


PLAN = rp.compile([v_sum(window=rp.sliding("1h"), name="total")])


def kept_database_cursor() -> Any:
    """A new connection to the database execute() keeps for calls without threads=."""
    return duckdb_connections._database(None).cursor()


def registered(con: Any, name: str) -> bool:
    """Whether ``name`` is registered on ``con`` (registrations are temporary views)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name]).fetchall()[0][0])


def threads_of(con: Any) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


# ---- nothing registered for one call is visible to the next ------------------------


def test_a_call_without_its_table_fails_and_never_reads_the_previous_calls() -> None:
    first = rp.execute(PLAN, tables={"Events": rows_at((1, 5), (1, 7))})
    assert first.sort_by("ts").column("total").to_pylist() == [5, 12]
    with pytest.raises(DataError, match="no table given for source 'Events'"):
        rp.execute(PLAN, tables={})
    # Below execute()'s own check, the backend refuses as well (not a stale registration).
    with pytest.raises(DataError, match="no table given for source 'Events'"):
        DuckDBBackend().run(PLAN.outputs, {})


def test_the_previous_calls_table_name_is_not_found_afterwards() -> None:
    rp.execute(PLAN, tables={"Events": rows_at((1, 5))})
    cursor = kept_database_cursor()
    try:
        assert not registered(cursor, "Events")
        # Not found, not even through DuckDB's replacement scan of this module's class Events.
        with pytest.raises(duckdb.CatalogException, match="Events"):
            cursor.sql('SELECT * FROM "Events"').fetchall()
    finally:
        cursor.close()


def test_a_calls_cursor_is_closed_with_what_it_registered() -> None:
    with duckdb_connections.call_cursor() as first:
        first.register("Mine", rows_at((1, 5)))
        assert registered(first, "Mine")
        with duckdb_connections.call_cursor() as second:  # e.g. another thread's call
            assert not registered(second, "Mine")
    with duckdb_connections.call_cursor() as after:
        assert not registered(after, "Mine")
    with pytest.raises(duckdb.Error):
        first.execute("SELECT 1")  # closed


def test_the_same_source_name_with_new_data_gives_the_new_results() -> None:
    a = rp.execute(PLAN, tables={"Events": rows_at((1, 5), (1, 7))})
    b = rp.execute(PLAN, tables={"Events": rows_at((2, 100))})
    assert a.sort_by("ts").column("total").to_pylist() == [5, 12]
    assert b.sort_by("ts").column("total").to_pylist() == [100]


def test_a_users_connection_keeps_none_of_the_inputs_even_when_the_query_fails() -> None:
    con = duckdb.connect()
    try:
        con.register("Other", rows_at((1, 5)))
        assert registered(con, "Other")  # what the checks below would see
        out = rp.execute(PLAN, tables={"Events": rows_at((1, 5))}, connection=con)
        assert out.sort_by("ts").column("total").to_pylist() == [5]
        assert not registered(con, "Events") and registered(con, "Other")
        # An Int64 sum beyond the limits fails in DuckDB, after the inputs were registered.
        with pytest.raises(EngineError, match="DuckDB failed on output 'Events'.*out of range"):
            rp.execute(PLAN, tables={"Events": rows_at((1, 2**62), (1, 2**62))}, connection=con)
        assert not registered(con, "Events")
    finally:
        con.close()


# ---- settings ------------------------------------------------------------------------


def test_threads_do_not_reach_the_next_call() -> None:
    table = rows_at((1, 5), (1, 7), (2, 1))
    default = rp.execute(PLAN, tables={"Events": table})
    cursor = kept_database_cursor()
    try:
        before = threads_of(cursor)
        one_thread = rp.execute(PLAN, tables={"Events": table}, threads=1)
        # Rows in any order: DuckDB's output order depends on its threads.
        assert one_thread.schema.equals(default.schema)
        ref.assert_same_rows(one_thread.to_pylist(), default.to_pylist(), SOURCE_COLUMNS)
        # The run with threads=1 had a database of that setting; the shared one is untouched.
        own = duckdb_connections._database(1).cursor()
        try:
            assert threads_of(own) == 1
        finally:
            own.close()
        assert threads_of(cursor) == before
    finally:
        cursor.close()


def test_threads_on_a_users_connection_are_put_back() -> None:
    con = duckdb.connect()
    try:
        con.execute("SET threads = 3")
        out = rp.execute(PLAN, tables={"Events": rows_at((1, 5))}, connection=con, threads=1)
        assert out.sort_by("ts").column("total").to_pylist() == [5]
        assert threads_of(con) == 3
        with pytest.raises(EngineError):  # and after a failed run
            rp.execute(PLAN, tables={"Events": rows_at((1, 2**62), (1, 2**62))}, connection=con, threads=1)
        assert threads_of(con) == 3
    finally:
        con.close()


@pytest.mark.parametrize("bad", [0, -2, "2", 1.5, True])
def test_bad_threads_name_the_value(bad: Any) -> None:
    with pytest.raises(RelplanError, match=f"threads= takes a positive int.*got {bad!r}"):
        rp.execute(PLAN, tables={"Events": rows_at((1, 5))}, threads=bad)


# ---- threads and processes ---------------------------------------------------------------

# Exact aggregates only: the concurrent and the single-threaded runs must agree to the bit.
EXACT_FUNCS = ("count", "count_distinct", "sum", "min", "max", "first", "last")


@settings(SETTINGS, max_examples=5)
@given(st.lists(
    st.tuples(feature_specs(per_event_windows, lambda w: EXACT_FUNCS), event_rows(max_rows=16)),
    min_size=4, max_size=5,
))
def test_threads_running_at_once_get_their_own_results(work: list[tuple[Any, list[dict[str, Any]]]]) -> None:
    # Every thread's table is named "Events", and each holds a row no other has (k = 1000 + i),
    # so a thread that read another's table would get a different row set.
    jobs = []
    for i, (spec, rows) in enumerate(work):
        marker = {"k": 1000 + i, "v": i, "x": None, "s": None, "b": None, "ts": ref.from_us(i)}
        jobs.append((rp.compile([spec.feature("f")]), to_table([*rows, marker])))
    alone = [rp.execute(plan, tables={"Events": table}) for plan, table in jobs]

    barrier = threading.Barrier(len(jobs))
    results: list[list[pa.Table]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        plan, table = jobs[i]
        try:
            barrier.wait()
            for _ in range(3):
                results[i].append(rp.execute(plan, tables={"Events": table}))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, expected in enumerate(alone):
        assert len(results[i]) == 3
        for got in results[i]:
            assert got.schema.equals(expected.schema)
            ref.assert_same_rows(got.to_pylist(), expected.to_pylist(), SOURCE_COLUMNS)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_opens_its_own_database() -> None:
    table = rows_at((1, 5), (1, 7), (2, 1))
    in_parent = rp.execute(PLAN, tables={"Events": table})  # the parent's database is open
    parent_db = duckdb_connections._database(None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's clean-up
        try:
            out = rp.execute(PLAN, tables={"Events": table})
            own = duckdb_connections._database(None) is not parent_db
            payload = pickle.dumps((own, out.sort_by("ts").to_pylist()))
        except BaseException as e:
            payload = pickle.dumps(("error", repr(e)))
        os.write(write, payload)
        os._exit(0)
    os.close(write)
    try:
        deadline = time.monotonic() + 60
        chunks = []
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "the forked child did not answer within 60 s"
            chunk = os.read(read, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    own, rows = pickle.loads(b"".join(chunks))
    assert own is True, rows
    assert rows == in_parent.sort_by("ts").to_pylist()
    assert duckdb_connections._database(None) is parent_db  # the parent's stays its own


# ---- the fast paths give what the general ones give -----------------------------------


@settings(SETTINGS, max_examples=60)
@given(event_rows(max_rows=12), st.booleans())
def test_conform_table_of_a_canonical_table_equals_the_general_path(rows: list[dict[str, Any]], null_time: bool) -> None:
    if null_time and rows:
        rows[0]["ts"] = None
    table = pa.Table.from_pylist(rows, schema=Events.to_arrow_schema())
    # An extra column makes the schema differ: conform_table then goes column by column.
    general = table.append_column("extra", pa.array([0] * table.num_rows, pa.int64()))
    if null_time and rows:
        for t in (table, general):
            with pytest.raises(DataError, match="event-time column 'ts'.*1 NULL value"):
                conform_table(EVENTS, t)
        return
    fast = conform_table(EVENTS, table)
    assert fast.equals(conform_table(EVENTS, general), check_metadata=True)
    assert fast.schema.equals(Events.to_arrow_schema(), check_metadata=True)
    assert conform_table(EVENTS, fast).equals(fast)  # conformed once, the same again


def test_conform_table_drops_metadata_as_the_general_path_does() -> None:
    table = rows_at((1, 5))
    with_metadata = pa.Table.from_arrays(
        table.columns,
        schema=pa.schema([f.with_metadata({"note": "x"}) for f in table.schema], metadata={"pandas": "{}"}),
    )
    got = conform_table(EVENTS, with_metadata)
    assert got.schema.equals(Events.to_arrow_schema(), check_metadata=True)
    assert got.schema.metadata is None and all(f.metadata is None for f in got.schema)


def _naive_by_columns(table: pa.Table) -> pa.Table:
    """_naive as first written: every column, zoned timestamps cast to naive."""
    cols = [
        c.cast(pa.timestamp(c.type.unit)) if pa.types.is_timestamp(c.type) and c.type.tz is not None else c
        for c in table.columns
    ]
    return pa.Table.from_arrays(cols, names=table.column_names)


@settings(SETTINGS, max_examples=25)
@given(event_rows(max_rows=12), st.sampled_from(["s", "ms", "us", "ns"]), st.sampled_from(["UTC", None]))
def test_naive_equals_the_column_by_column_cast(rows: list[dict[str, Any]], unit: str, tz: str | None) -> None:
    table = to_table(rows)
    table = table.append_column("t2", table.column("ts").cast(pa.timestamp(unit, tz=tz), safe=False))
    got, expected = _naive(table), _naive_by_columns(table)
    assert got.schema.equals(expected.schema)
    assert repr(got.to_pylist()) == repr(expected.to_pylist())  # NaN as NaN (equals() says NaN != NaN)
    assert not any(pa.types.is_timestamp(t) and t.tz is not None for t in got.schema.types)


@settings(SETTINGS, max_examples=40)
@given(feature_specs(per_event_windows), event_rows(max_rows=12))
def test_in_ir_types_equals_a_cast_of_the_whole_table(spec: Any, rows: list[dict[str, Any]]) -> None:
    plan = rp.compile([spec.feature("f")])
    sink = plan.outputs[0]
    cursor = kept_database_cursor()
    try:
        cursor.register("Events", _naive(conform_table(EVENTS, to_table(rows))))
        result = cursor.sql(DuckDBBackend().lowering.render(sink, pretty=False)).to_arrow_table()
    finally:
        cursor.close()
    expected = result.cast(sink.schema.to_arrow())
    assert in_ir_types(result, sink, "DuckDB").equals(expected, check_metadata=True)


def test_in_ir_types_out_of_range_is_an_engine_error() -> None:
    sink = PLAN.outputs[0]
    result = rows_at((1, 5)).append_column("total", pa.array([2**70], pa.decimal128(38, 0)))
    result = _naive(result)
    with pytest.raises(EngineError, match="result for output 'Events' does not fit its IR types"):
        in_ir_types(result, sink, "DuckDB")
