"""Point-in-time-correct training data (rp.pitc_join_features): semantics and properties.

The properties, on hypothesis-drawn events, spines and features (tests/strategies.py):

- the result is the spine, row for row: same rows, same order, duplicates kept,
  every spine column untouched, one more column per feature;
- no value comes from after the inference time: events after every spine time, and
  (by default) events at exactly a spine time, change nothing;
- every value equals the brute force of tests/reference.py (at_points), on DuckDB
  under each lowering (asof, range_join, union), on the reference executor, on
  Spark and on Flink (batch).

Spines hold keys taken from the events and keys with no events, NULL keys, NULL
times, times on, and one microsecond either side of, event times (ties) and of
window edges, and duplicated rows.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import relplan as rp
import reference as ref
from strategies import (
    BASES_US,
    FeatureSpec,
    STEP,
    bools,
    event_rows,
    feature_specs,
    floats,
    ints,
    keys_,
    per_event_windows,
    strings,
    timestamps,
    to_table,
)

UTC = dt.timezone.utc
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
SPINE_SCHEMA = pa.schema([
    ("k", pa.int64()), ("kk", pa.int64()), ("s", pa.string()), ("b", pa.bool_()), ("x", pa.float64()),
    ("at", pa.timestamp("us", tz="UTC")), ("label", pa.int64()),
])
LOWERINGS = ("union", "range_join", "tiles", None)  # None: relplan's own choice (asof for latest values)


# ---- data ---------------------------------------------------------------------------


@st.composite
def spines(draw: st.DrawFn, rows: list[dict[str, Any]], max_rows: int = 12) -> list[dict[str, Any]]:
    """Spine rows: most at an event's key and near its time, some at keys without
    events, NULL keys, NULL times; some rows duplicated."""
    base = draw(st.sampled_from(BASES_US))
    out = []
    for i in range(draw(st.integers(0, max_rows))):
        if rows and draw(st.integers(0, 3)):
            r = ref.normalize([draw(st.sampled_from(rows))])[0]
            shift = draw(st.sampled_from((0, 0, 1, -1, STEP, -STEP, 2 * STEP, 10 * STEP)))
            point = {"k": r["k"], "kk": ref.mod(r["k"], 3), "s": r["s"], "b": r["b"], "x": r["x"],
                     "at": ref.from_us(ref.to_us(r["ts"]) + shift)}
        else:
            point = {
                "k": draw(keys_), "kk": draw(st.sampled_from((None, 0, 1, 2, 5))),
                "s": draw(st.one_of(st.none(), strings)), "b": draw(st.one_of(st.none(), bools)),
                "x": draw(st.one_of(st.none(), floats)),
                "at": None if draw(st.integers(0, 5)) == 0 else draw(timestamps(base, -6, 23)),
            }
        point["label"] = i
        out.append(point)
    if out and draw(st.booleans()):
        out += [dict(p) for p in draw(st.lists(st.sampled_from(out), max_size=3))]
    return out


def spine_table(points: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(points, schema=SPINE_SCHEMA)


def join(specs: list[FeatureSpec], rows: list[dict[str, Any]], points: list[dict[str, Any]], *,
         engine: str = "duckdb", inclusive: bool = False, lowering: str | None = None, **options: Any) -> pa.Table:
    feats = [s.feature(f"f{i}") for i, s in enumerate(specs)]
    config = rp.OptimizerConfig(asof_lowering=lowering)
    return rp.pitc_join_features(
        spine_table(points), feats, {"Events": to_table(rows)}, engine=engine, inclusive=inclusive, config=config, **options
    )


def check(specs: list[FeatureSpec], rows: list[dict[str, Any]], points: list[dict[str, Any]], got: pa.Table,
          inclusive: bool) -> None:
    """``got`` is the spine as given plus, per feature, the brute force's values and types."""
    spine = spine_table(points)
    assert got.num_rows == spine.num_rows
    assert got.select(spine.column_names).equals(spine), "the spine's columns or row order changed"
    expected_types: dict[str, str] = {}
    expected: list[dict[str, Any]] = [{} for _ in points]
    for i, s in enumerate(specs):
        expected_types.update(s.result_types(f"f{i}"))
        for row, values in zip(expected, s.at_points(rows, points, f"f{i}", inclusive)):
            row.update(values)
    assert got.column_names == spine.column_names + list(expected_types)
    for name, t in expected_types.items():
        assert got.schema.field(name).type == ARROW[t], f"{name}: {got.schema.field(name).type}, expected {t}"
    actual = got.select(list(expected_types)).to_pylist()
    for i, (a, e) in enumerate(zip(actual, expected)):
        bad = [c for c in e if not ref.same_value(a[c], e[c])]
        assert not bad, f"spine row {i} {points[i]}: " + ", ".join(f"{c}: {a[c]!r} != {e[c]!r}" for c in bad)


ARROW = {"Int64": pa.int64(), "Float64": pa.float64(), "String": pa.string(), "Bool": pa.bool_(),
         "Timestamp": pa.timestamp("us", tz="UTC")}

# Keys the spine has columns for (every grouping of the feature strategies but none).
point_features = st.lists(feature_specs(per_event_windows), min_size=1, max_size=3)


# ---- properties --------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), specs=point_features, rows=event_rows(), inclusive=st.booleans())
def test_duckdb_and_the_reference_executor_equal_the_brute_force_under_every_lowering(
    data: st.DataObject, specs: list[FeatureSpec], rows: list[dict[str, Any]], inclusive: bool
) -> None:
    points = data.draw(spines(rows))
    note(f"features: {specs}\nspine: {points}")
    for lowering in LOWERINGS:
        try:
            check(specs, rows, points, join(specs, rows, points, inclusive=inclusive, lowering=lowering), inclusive)
        except AssertionError as e:
            raise AssertionError(f"lowering {lowering}: {e}") from None
    check(specs, rows, points, join(specs, rows, points, engine="reference", inclusive=inclusive), inclusive)


@SETTINGS
@given(data=st.data(), specs=point_features, rows=event_rows(), lowering=st.sampled_from(LOWERINGS))
def test_no_value_comes_from_after_the_inference_time(
    data: st.DataObject, specs: list[FeatureSpec], rows: list[dict[str, Any]], lowering: str | None
) -> None:
    """Events after every spine time change nothing; events at exactly a spine row's
    time change nothing in that row (the default): each is a copy of an event moved there."""
    points = data.draw(spines(rows))
    times = [p["at"] for p in points if p["at"] is not None]
    if not rows or not times:
        return
    later = max(times) + dt.timedelta(microseconds=data.draw(st.sampled_from((1, STEP, 10**9))))
    before = join(specs, rows, points, lowering=lowering)
    note(f"features: {specs}\nspine: {points}")
    moved = [dict(r, ts=later) for r in rows]
    assert join(specs, rows + moved, points, lowering=lowering).equals(before), "events from the future leaked"
    now = data.draw(st.sampled_from(times))
    at_now = join(specs, rows + [dict(r, ts=now) for r in rows], points, lowering=lowering)
    rows_at_now = [i for i, p in enumerate(points) if p["at"] == now]
    assert at_now.take(rows_at_now).equals(before.take(rows_at_now)), (
        "events at exactly the inference time were counted (inclusive=False)"
    )


LATEST_TIES = settings(SETTINGS, max_examples=60)


def only_last(window: tuple[str, ...]) -> tuple[str, ...]:
    return ("last",)


@st.composite
def logs(draw: st.DrawFn) -> tuple[str, bool, list[dict[str, Any]]]:
    """Events for latest values: ``none`` (no two share a time), ``pair`` (one pair of
    rows shares a time, of one key or two) or ``heavy`` (three times in all: ties
    everywhere); in time order, as a log usually is, or shuffled."""
    ties = draw(st.sampled_from(("none", "pair", "heavy")))
    n = draw(st.integers(0, 24))
    if ties == "heavy":
        steps = sorted(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    else:
        steps = sorted(draw(st.sets(st.integers(0, 60), min_size=n, max_size=n)))
        if ties == "pair" and n > 1:
            i = draw(st.integers(1, n - 1))
            steps[i] = steps[i - 1]
    base = draw(st.sampled_from(BASES_US))
    rows = []
    for step in steps:
        rows.append({
            "k": draw(st.sampled_from((0, 1, None))),
            "v": draw(st.one_of(st.none(), ints)),
            "x": draw(st.one_of(st.none(), floats)),
            "s": draw(st.one_of(st.none(), strings)),
            "b": draw(st.one_of(st.none(), bools)),
            "ts": ref.from_us(base + step * STEP),
        })
    in_order = draw(st.booleans())
    if not in_order:
        rows = draw(st.permutations(rows))
    return ties, in_order, rows


@LATEST_TIES
@given(data=st.data(), specs=st.lists(feature_specs(per_event_windows, only_last), min_size=1, max_size=2),
       log=logs(), inclusive=st.booleans())
def test_latest_values_with_heavy_ties_or_none_equal_the_brute_force(
    data: st.DataObject, specs: list[FeatureSpec], log: tuple[str, bool, list[dict[str, Any]]], inclusive: bool
) -> None:
    """DuckDB's ASOF JOIN skips settling ties where the events show none in one pass
    (in time order), and settles them otherwise: the same values either way."""
    from relplan.compiler.pitc import _unique_in_time_order

    ties, in_order, rows = log
    points = data.draw(spines(rows))
    note(f"features: {specs}\nties: {ties}, in time order: {in_order}\nspine: {points}")
    check(specs, rows, points, join(specs, rows, points, inclusive=inclusive), inclusive)
    # The pass's verdict: never "no ties" where two events share a key and a time; always
    # "no ties" where a log in time order has no two events at one time.
    verdict = _unique_in_time_order(to_table(rows), ("k", "ts"))
    pairs = [(r["k"], r["ts"]) for r in rows]
    assert not verdict or len(set(pairs)) == len(pairs)
    assert verdict or not (ties == "none" and in_order)


SPARK = settings(SETTINGS, max_examples=20)
FLINK = settings(SETTINGS, max_examples=12)  # 4-7 s a job


@SPARK
@given(data=st.data(), specs=point_features, rows=event_rows(max_rows=16), inclusive=st.booleans(),
       lowering=st.sampled_from(LOWERINGS))
def test_spark_equals_the_brute_force(
    spark: Any, data: st.DataObject, specs: list[FeatureSpec], rows: list[dict[str, Any]], inclusive: bool,
    lowering: str | None,
) -> None:
    points = data.draw(spines(rows, max_rows=8))
    note(f"features: {specs}\nspine: {points}\nlowering: {lowering}")
    check(specs, rows, points, join(specs, rows, points, engine="spark", inclusive=inclusive, lowering=lowering), inclusive)


def flink_funcs(window: tuple[str, ...]) -> tuple[str, ...]:
    # Flink's VAR_SAMP is one-pass (docs/semantics.md); Flink refuses DISTINCT in OVER windows,
    # which the union lowering needs.
    return tuple(f for f in ref.AGG_FUNCS if f not in ("var", "std", "count_distinct"))


@FLINK
@given(data=st.data(), specs=st.lists(feature_specs(per_event_windows, flink_funcs), min_size=1, max_size=3),
       rows=event_rows(max_rows=16), inclusive=st.booleans(), lowering=st.sampled_from(LOWERINGS))
def test_flink_batch_equals_the_brute_force(
    data: st.DataObject, specs: list[FeatureSpec], rows: list[dict[str, Any]], inclusive: bool, lowering: str | None
) -> None:
    points = data.draw(spines(rows, max_rows=8))
    note(f"features: {specs}\nspine: {points}\nlowering: {lowering}")
    check(specs, rows, points, join(specs, rows, points, engine="flink", inclusive=inclusive, lowering=lowering), inclusive)


# ---- the documented semantics, by example -------------------------------------------

T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


class Tx(rp.Source):
    cc_num: rp.Int64
    account_id: rp.Int64
    amt: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def failed_count(tx: Tx, wspec: rp.WindowSpec):  # type: ignore[no-untyped-def]
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation
def amount_sum(tx: Tx, wspec: rp.WindowSpec):  # type: ignore[no-untyped-def]
    return tx.groupby("cc_num")["amt"].window(wspec).sum()


TX = pa.Table.from_pylist([
    {"cc_num": 1, "account_id": 10, "amt": 5.0, "status": "failed", "ts": at(0)},
    {"cc_num": 1, "account_id": 10, "amt": 7.0, "status": "ok", "ts": at(30)},
    {"cc_num": 1, "account_id": 10, "amt": 3.0, "status": "failed", "ts": at(60)},   # the label's own event
    {"cc_num": 2, "account_id": 10, "amt": 1.0, "status": "failed", "ts": at(60)},
    {"cc_num": 2, "account_id": 20, "amt": None, "status": "ok", "ts": at(90)},
], schema=Tx.to_arrow_schema())


def spine_of(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"cc_num": c, "account_id": a, "ts": t, "label": lb} for c, a, t, lb in rows],
        schema=pa.schema([("cc_num", pa.int64()), ("account_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("label", pa.int64())]),
    )


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_events_at_the_inference_time_are_left_out_unless_inclusive(engine: str) -> None:
    spine = spine_of([(1, 10, at(60), 1)])  # made from the failed transaction at 60
    feats = [failed_count(window=rp.sliding("1h")), amount_sum(window=rp.lifetime()), rp.latest(Tx, "amt", by="cc_num")]
    before = rp.pitc_join_features(spine, feats, {"Tx": TX}, engine=engine)
    assert before.select(["failed_count_1h", "amount_sum_lifetime", "latest_amt"]).to_pylist() == [
        # [t-1h, t): the failed one at 0 is exactly 1h before and counts; its own event does not
        {"failed_count_1h": 1, "amount_sum_lifetime": 12.0, "latest_amt": 7.0}
    ]
    at_t = rp.pitc_join_features(spine, feats, {"Tx": TX}, engine=engine, inclusive=True)
    assert at_t.select(["failed_count_1h", "amount_sum_lifetime", "latest_amt"]).to_pylist() == [
        # (t-1h, t]: the one at 0 is out, the three at 60 (its own, and account 10's other) are in
        {"failed_count_1h": 2, "amount_sum_lifetime": 15.0, "latest_amt": 3.0}
    ]


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_a_ttl_makes_old_values_null_at_its_exact_edge(engine: str) -> None:
    # The newest amount of card 1 before 90 is at 60: 30 minutes old.
    spine = spine_of([(1, 10, at(90), 0), (1, 10, at(90.0001), 0)])
    feats = [rp.latest(Tx, "amt", by="cc_num", ttl="30m", name="fresh")]
    got = rp.pitc_join_features(spine, feats, {"Tx": TX}, engine=engine)
    assert got.column("fresh").to_pylist() == [3.0, None]  # [t-30m, t): exactly 30m old is still in
    got = rp.pitc_join_features(spine, feats, {"Tx": TX}, engine=engine, inclusive=True)
    assert got.column("fresh").to_pylist() == [None, None]  # (t-30m, t]: exactly 30m old is out


@pytest.mark.parametrize("lowering", ["asof", "union", "range_join"])
def test_ties_take_the_largest_value_whatever_the_row_order(lowering: str) -> None:
    rows = [{"cc_num": 5, "account_id": 1, "amt": a, "status": "ok", "ts": at(0)} for a in (2.0, 9.0, None, 4.0)]
    spine = spine_of([(5, 1, at(1), 0)])
    config = rp.OptimizerConfig(asof_lowering=lowering)
    for seed in range(4):
        random.Random(seed).shuffle(rows)
        tx = pa.Table.from_pylist(rows, schema=Tx.to_arrow_schema())
        got = rp.pitc_join_features(spine, [rp.latest(Tx, "amt", by="cc_num")], {"Tx": tx}, config=config)
        assert got.column("latest_amt").to_pylist() == [9.0]


def test_events_declared_unique_per_key_and_time_skip_settling_ties() -> None:
    """SourceStats(unique=...) is a declaration, like a primary key: the ASOF JOIN's
    match is then the answer (explain: unique_times), and it is the same answer."""
    unique_tx = TX  # no card has two events at one time
    spine = spine_of([(1, 10, at(t), 0) for t in (0, 1, 45, 61, 200)])
    feats = [rp.latest(Tx, "amt", by="cc_num"), rp.latest(Tx, "status", by="cc_num", ttl="40m")]
    declared = rp.Statistics({"Tx": rp.SourceStats(rows=unique_tx.num_rows, unique=[("ts", "cc_num")])})
    assert "lowering=asof unique_times" in rp.pitc_plan(spine, feats, statistics=declared).explain()
    assert "unique_times" not in rp.pitc_plan(spine, feats).explain()
    got = rp.pitc_join_features(spine, feats, {"Tx": unique_tx}, statistics=declared)
    assert got.equals(rp.pitc_join_features(spine, feats, {"Tx": unique_tx}, engine="reference"))
    assert got.select(["latest_amt", "latest_status_40m"]).to_pylist() == [
        {"latest_amt": None, "latest_status_40m": None},
        {"latest_amt": 5.0, "latest_status_40m": "failed"},
        {"latest_amt": 7.0, "latest_status_40m": "ok"},
        {"latest_amt": 3.0, "latest_status_40m": "failed"},
        {"latest_amt": 3.0, "latest_status_40m": None},
    ]
    # Measured exactly, once: (cc_num, ts) holds, (account_id, ts) does not (two events at 60).
    measured = rp.measure_statistics({"Tx": TX}, unique={"Tx": [("cc_num", "ts"), ("account_id", "ts")]})
    assert measured.of("Tx").unique == (("cc_num", "ts"),)
    with pytest.raises(rp.OptimizerError, match="unique takes sets of column names"):
        rp.SourceStats(rows=1, unique="cc_num")  # type: ignore[arg-type]
    with pytest.raises(rp.DataError, match="the table has no column 'card'"):
        rp.measure_statistics({"Tx": TX}, unique={"Tx": [("card", "ts")]})


def test_a_log_in_time_order_without_ties_skips_settling_them() -> None:
    """pitc_join_features on DuckDB looks at the events once: in time order with no two
    of a card at one time (or few enough rows to group), the ASOF JOIN's match is the
    answer (unique_times); a tie keeps the settling. pitc_plan never looks: its SQL may
    run on other data."""
    from relplan.compiler.pitc import _plan

    feats = [rp.latest(Tx, "amt", by="cc_num")]
    spine = spine_of([(1, 10, at(100), 0)])

    def skips(tx: pa.Table) -> bool:
        plan, _ = _plan(spine, feats, None, None, False, {"Tx": tx}, None, None, check_ties=True)
        return "unique_times" in plan.explain()

    assert skips(TX)  # cards 1 and 2 both have an event at 60: no tie
    tied = TX.set_column(0, "cc_num", pa.array([1, 1, 1, 1, 2]))  # card 1 twice at 60
    assert not skips(tied)
    assert skips(TX.take([1, 0, 2, 3, 4]))  # out of time order, but small enough to group: no tie
    assert "unique_times" not in rp.pitc_plan(spine, feats, tables={"Tx": TX}).explain()
    for tx in (TX, tied):
        got = rp.pitc_join_features(spine, feats, {"Tx": tx})
        assert got.equals(rp.pitc_join_features(spine, feats, {"Tx": tx}, engine="reference"))


@pytest.mark.parametrize("lowering", ["union", "range_join", None])
def test_null_and_unknown_keys_keep_their_rows_and_get_nulls(lowering: str | None) -> None:
    spine = spine_of([(None, 10, at(100), 0), (99, 99, at(100), 1), (1, 10, None, 2), (1, 10, at(100), 3)])
    feats = [failed_count(window=rp.sliding("1d")), amount_sum(window=rp.sliding("1d")), rp.latest(Tx, "amt", by="cc_num")]
    got = rp.pitc_join_features(spine, feats, {"Tx": TX}, config=rp.OptimizerConfig(asof_lowering=lowering))
    assert got.select(["label", "failed_count_1d", "amount_sum_1d", "latest_amt"]).to_pylist() == [
        {"label": 0, "failed_count_1d": 3, "amount_sum_1d": None, "latest_amt": None},  # NULL card: no entity
        {"label": 1, "failed_count_1d": 0, "amount_sum_1d": None, "latest_amt": None},  # no events: count 0
        {"label": 2, "failed_count_1d": None, "amount_sum_1d": None, "latest_amt": None},  # NULL time
        {"label": 3, "failed_count_1d": 3, "amount_sum_1d": 15.0, "latest_amt": 3.0},
    ]


def test_the_spine_comes_back_row_for_row_with_columns_of_any_type() -> None:
    spine = pa.table({
        "ts": pa.array([at(70), at(70), at(10), at(70)], pa.timestamp("ns")),  # pandas' unit, no zone
        "card": pa.array([2, 2, 1, 1]),
        "tags": pa.array([["a"], [], None, ["b", "c"]], pa.list_(pa.string())),  # no IR type: passed through
        "label": pa.array([True, True, False, None]),
    })
    got = rp.pitc_join_features(spine, [amount_sum(window=rp.lifetime())], {"Tx": TX}, keys={"cc_num": "card"})
    assert got.select(spine.column_names).equals(spine)
    assert got.column("amount_sum_lifetime").to_pylist() == [1.0, 1.0, 5.0, 15.0]


def test_features_of_several_entities_join_one_spine() -> None:
    spine = spine_of([(2, 10, at(95), 0), (1, 20, at(95), 1)])
    feats = [failed_count(window=rp.sliding("2h")), amount_sum(window=rp.sliding("2h")),
             rp.latest(Tx, "status", by="account_id", name="last_status")]
    got = rp.pitc_join_features(spine, feats, {"Tx": TX})
    assert got.select(["failed_count_2h", "amount_sum_2h", "last_status"]).to_pylist() == [
        {"failed_count_2h": 3, "amount_sum_2h": 1.0, "last_status": "failed"},
        {"failed_count_2h": 0, "amount_sum_2h": 15.0, "last_status": "ok"},
    ]


def test_explain_shows_each_joins_lowering_chosen_from_statistics() -> None:
    feats = [amount_sum(window=rp.sliding("7d")), rp.latest(Tx, "amt", by="cc_num")]
    spine = spine_of([]).schema

    def explained(distinct_cards: int) -> str:
        stats = rp.Statistics({
            "pitc_spine": rp.SourceStats(rows=100_000),
            "Tx": rp.SourceStats(rows=5_000_000, distinct={"cc_num": distinct_cards}, spans={"ts": 60 * 86_400_000_000}),
        })
        return rp.pitc_plan(spine, feats, statistics=stats).explain()

    # 100 events a card: 10M pairs for the range join; the tiles' partials cost more.
    assert "lowering=range_join estimates=[range_join 290ms, tiles 910ms, union 2.1s]" in explained(50_000)
    # 100k events a card: 10^10 pairs; the tiles of a card are 1,441 hours.
    assert "lowering=tiles tiles=1h estimates=[range_join 60.2s, tiles 1.8s, union 28.9s]" in explained(50)
    assert explained(50).count("lowering=asof frames=[(-inf, t) aggs=[latest_amt") == 1
    no_stats = rp.pitc_plan(spine, feats).explain()
    assert no_stats.count("lowering=union frames") == 1 and no_stats.count("lowering=asof frames") == 1


@pytest.mark.parametrize("lowering", ["union", "range_join", "asof"])
@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_the_sql_runs_as_it_is(spark: Any, engine: str, lowering: str) -> None:
    """to_sql() reads the spine from the table pitc_spine (row number, keys, time)."""
    import duckdb

    spine = spine_of([(1, 10, at(61), 0), (2, 20, at(120), 1)])
    feats = [amount_sum(window=rp.sliding("1h")), rp.latest(Tx, "amt", by="cc_num")]
    plan = rp.pitc_plan(spine, feats, config=rp.OptimizerConfig(asof_lowering=lowering))
    rows = rp.pitc_spine(spine, plan)
    expected = rp.pitc_join_features(spine, feats, {"Tx": TX}, engine="reference")
    if engine == "duckdb":
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("pitc_spine", rows)
        con.register("Tx", TX)
        result = con.sql(plan.to_sql("duckdb").rstrip(";")).to_arrow_table()
    else:
        spark.createDataFrame(rows.to_pandas()).createOrReplaceTempView("pitc_spine")
        spark.createDataFrame(TX.to_pandas()).createOrReplaceTempView("Tx")
        result = pa.Table.from_pandas(spark.sql(plan.to_sql("spark").rstrip(";")).toPandas())
    by_row = sorted(result.select(["__pitc_row", "amount_sum_1h", "latest_amt"]).to_pylist(), key=lambda r: r["__pitc_row"])
    assert [(r["amount_sum_1h"], r["latest_amt"]) for r in by_row] == list(
        zip(expected.column("amount_sum_1h").to_pylist(), expected.column("latest_amt").to_pylist())
    )


# ---- errors that name what the user wrote -------------------------------------------


def test_errors_name_what_the_user_wrote() -> None:
    spine = spine_of([(1, 10, at(0), 0)])
    lifetime_sum = amount_sum(window=rp.lifetime())
    with pytest.raises(rp.RelplanError, match=r"keyed by 'cc_num', which the spine lacks.*keys=\{'cc_num'"):
        rp.pitc_join_features(spine.drop_columns(["cc_num"]), [lifetime_sum], {"Tx": TX})
    two_times = spine.append_column("seen", spine.column("ts"))
    with pytest.raises(rp.SchemaError, match=r"2 timestamp columns \['ts', 'seen'\]: pass time="):
        rp.pitc_join_features(two_times, [lifetime_sum], {"Tx": TX})
    with pytest.raises(rp.SchemaError, match="time column 'label' is int64, not a timestamp"):
        rp.pitc_join_features(spine, [lifetime_sum], {"Tx": TX}, time="label")
    with pytest.raises(rp.FeatureError, match="tumble_1h.*takes sliding and lifetime windows"):
        rp.pitc_join_features(spine, [amount_sum(window=rp.tumbling("1h"))], {"Tx": TX})
    with pytest.raises(rp.FeatureError, match="'label' has the name of a spine column"):
        rp.pitc_join_features(spine, [amount_sum(window=rp.lifetime(), name="label")], {"Tx": TX})
    with pytest.raises(rp.SchemaError, match="'__pitc_x' starts with '__pitc_'"):
        rp.pitc_join_features(spine.append_column("__pitc_x", spine.column("label")), [lifetime_sum], {"Tx": TX})
    with pytest.raises(rp.DataError, match="no table given for source 'Tx'"):
        rp.pitc_join_features(spine, [lifetime_sum], {})
    with pytest.raises(rp.RelplanError, match="mode='batch', got 'streaming'"):
        rp.pitc_join_features(spine, [lifetime_sum], {"Tx": TX}, engine="flink", mode="streaming")
    with pytest.raises(rp.SchemaError, match=r"column 'nope' .*rp.latest over Tx"):
        rp.latest(Tx, "nope", by="cc_num")
    with pytest.raises(rp.WindowError, match="unknown unit 'dayz' in ttl '30 dayz'"):
        rp.latest(Tx, "amt", by="cc_num", ttl="30 dayz")
    with pytest.raises(rp.RelplanError, match=r"pitc_spine\(\) takes a plan from rp.pitc_plan"):
        rp.pitc_spine(spine, rp.compile([lifetime_sum]))
    with pytest.raises(rp.OptimizerError, match="asof_lowering must be one of"):
        rp.OptimizerConfig(asof_lowering="hash")
    bad_key = spine.set_column(0, "cc_num", pa.array(["1"]))
    with pytest.raises(rp.RelplanError, match=r"spine key 'cc_num' \(String\) and event key 'cc_num' \(Int64\)"):
        rp.pitc_join_features(bad_key, [lifetime_sum], {"Tx": TX})
