"""Every bad input gets a RelplanError that names what the user wrote.

Errors raised inside an ``@rp.transformation`` body must point at the offending
line of the body: each such line below ends in a ``# marker`` comment, and
:func:`line_of` finds its number, so the tests do not hard-code line numbers.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp

_THIS = Path(__file__)
_LINES = _THIS.read_text().splitlines()


def line_of(marker: str) -> str:
    """``test_errors.py:N`` of the one line that ends in ``# <marker>``."""
    hits = [i for i, text in enumerate(_LINES, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, f"marker {marker!r} found on lines {hits}"
    return f"{_THIS.name}:{hits[0]}"


def assert_error(e: BaseException, *fragments: str, at: str | None = None) -> None:
    """``e`` is a RelplanError whose message holds ``fragments`` and, if given,
    whose location (and printed text) is the line ``at``."""
    assert isinstance(e, rp.RelplanError), f"{type(e).__name__} is not a RelplanError: {e}"
    for fragment in fragments:
        assert fragment in e.message, f"{fragment!r} not in message {e.message!r}"
    if at is not None:
        assert e.where is not None, f"error has no location: {e}"
        # "file:12 in fn: source"; the " in " keeps line 12 from matching line 123.
        assert e.where.startswith(f"{at} in "), f"located at {e.where!r}, expected {at!r}"
        assert f"at {at} in " in str(e), str(e)


class Transactions(rp.Source):
    cc_num: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64
    ts: rp.Timestamp = rp.event_time()


class Accounts(rp.Source):  # no event-time column: cannot be windowed
    account_id: rp.Int64
    balance: rp.Float64


T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def transactions_table() -> pa.Table:
    return pa.table(
        {
            "cc_num": pa.array([1, 2, 3], pa.int64()),
            "merchant": ["m1", "m2", "m1"],
            "amt": [10.0, 20.0, 30.0],
            "status": ["ok", "failed", "failed"],
            "account_id": pa.array([7, 7, 8], pa.int64()),
            "ts": pa.array([T0, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(hours=2)], pa.timestamp("us", "UTC")),
        }
    )


@rp.transformation
def failed_count(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


# ---- errors inside a transformation body: the message names the user's words,
# ---- and the location is the offending line of the body.


@rp.transformation
def unknown_attribute(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.amnt > 0].groupby("account_id").window(wspec).count()  # unknown-attribute


@rp.transformation
def unknown_item(tx: Transactions, wspec: rp.WindowSpec):
    amount = tx["amnt"]  # unknown-item
    return tx[amount > 0].groupby("account_id").window(wspec).count()


@rp.transformation
def unknown_groupby(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("nope").window(wspec).count()  # unknown-groupby


@rp.transformation
def unknown_in_key_list(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby(["account_id", "acount_id2"]).window(wspec).count()  # unknown-key-list


@rp.transformation
def unknown_selection(tx: Transactions, wspec: rp.WindowSpec):
    narrow = tx[["account_id", "nope"]]  # unknown-selection
    return narrow.groupby("account_id").window(wspec).count()


@rp.transformation
def unknown_aggregated_column(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["nope"].window(wspec).sum()  # unknown-aggregated


@rp.transformation
def unknown_agg_column(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(total=("amt", "sum"), bad=("nope", "max"))  # unknown-agg


@rp.transformation
def unknown_agg_function(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(mid=("amt", "median"))  # unknown-agg-func


@rp.transformation
def aggregate_of_string(tx: Transactions, wspec: rp.WindowSpec, func: str):
    return getattr(tx.groupby("account_id")["merchant"].window(wspec), func)()  # string-aggregate


@rp.transformation
def agg_of_string(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(avg=("merchant", "mean"))  # string-agg


@rp.transformation
def window_without_event_time(acct: Accounts, wspec: rp.WindowSpec):
    return acct.groupby("account_id")["balance"].window(wspec).sum()  # no-event-time


@rp.transformation
def non_boolean_filter(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.amt].groupby("account_id").window(wspec).count()  # non-boolean-filter


@rp.transformation
def python_and(tx: Transactions, wspec: rp.WindowSpec):
    return tx[(tx.amt > 1) and (tx.amt < 5)].groupby("account_id").window(wspec).count()  # python-and


@rp.transformation
def python_or(tx: Transactions, wspec: rp.WindowSpec):
    return tx[(tx.status == "failed") or (tx.amt > 100)].groupby("account_id").window(wspec).count()  # python-or


@rp.transformation
def python_not(tx: Transactions, wspec: rp.WindowSpec):
    return tx[not (tx.amt > 1)].groupby("account_id").window(wspec).count()  # python-not


@rp.transformation
def count_without_window(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").count()  # count-without-window


@rp.transformation
def sum_without_window(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["amt"].sum()  # sum-without-window


@rp.transformation
def string_plus_number(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.merchant + 1 > 2].groupby("account_id").window(wspec).count()  # string-plus-number


@rp.transformation
def compare_string_with_number(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.status == 3].groupby("account_id").window(wspec).count()  # string-eq-number


@rp.transformation
def groupby_not_a_name(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby(3).window(wspec).count()  # groupby-int


@rp.transformation
def window_not_a_spec(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window("1h").count()  # window-str


@rp.transformation
def wrong_call_inside(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).count("amt")  # wrong-call


@rp.transformation
def python_error_in_body(tx: Transactions, wspec: rp.WindowSpec):
    n = len(tx.amt)  # python-error
    return tx.groupby("account_id").window(wspec).count() if n else None


BODY_ERRORS = [
    pytest.param(unknown_attribute, {}, rp.SchemaError,
                 ["unknown column 'amnt'", "in Transactions", "did you mean 'amt'"], "unknown-attribute",
                 id="tx.amnt"),
    pytest.param(unknown_item, {}, rp.SchemaError,
                 ["unknown column 'amnt'", "in Transactions", "did you mean 'amt'"], "unknown-item",
                 id="tx['amnt']"),
    pytest.param(unknown_groupby, {}, rp.SchemaError,
                 ["unknown column 'nope'", "in Transactions", "account_id"], "unknown-groupby",
                 id="groupby('nope')"),
    pytest.param(unknown_in_key_list, {}, rp.SchemaError,
                 ["unknown column 'acount_id2'", "did you mean 'account_id'"], "unknown-key-list",
                 id="groupby([..., 'acount_id2'])"),
    pytest.param(unknown_selection, {}, rp.SchemaError,
                 ["unknown column 'nope'", "in Transactions"], "unknown-selection",
                 id="tx[['account_id', 'nope']]"),
    pytest.param(unknown_aggregated_column, {}, rp.SchemaError,
                 ["unknown column 'nope'", "in Transactions"], "unknown-aggregated",
                 id="groupby()['nope'].sum()"),
    pytest.param(unknown_agg_column, {}, rp.SchemaError,
                 ["unknown column 'nope'", "in Transactions"], "unknown-agg",
                 id="agg(bad=('nope', 'max'))"),
    pytest.param(unknown_agg_function, {}, rp.FeatureError,
                 ["unknown aggregate 'median'", "mean", "count_distinct"], "unknown-agg-func",
                 id="agg(mid=('amt', 'median'))"),
    pytest.param(aggregate_of_string, {"func": "mean"}, rp.TypeMismatchError,
                 ["mean()", "numeric", "merchant is String", "column 'merchant' of Transactions"],
                 "string-aggregate", id="mean(String)"),
    pytest.param(aggregate_of_string, {"func": "sum"}, rp.TypeMismatchError,
                 ["sum()", "numeric", "merchant is String", "column 'merchant' of Transactions"],
                 "string-aggregate", id="sum(String)"),
    pytest.param(aggregate_of_string, {"func": "std"}, rp.TypeMismatchError,
                 ["std()", "numeric", "merchant is String", "column 'merchant' of Transactions"],
                 "string-aggregate", id="std(String)"),
    pytest.param(aggregate_of_string, {"func": "var"}, rp.TypeMismatchError,
                 ["var()", "numeric", "merchant is String"], "string-aggregate", id="var(String)"),
    pytest.param(agg_of_string, {}, rp.TypeMismatchError,
                 ["mean()", "numeric", "merchant is String"], "string-agg", id="agg(avg=('merchant', 'mean'))"),
    pytest.param(window_without_event_time, {}, rp.WindowError,
                 ["source Accounts has no event-time column", "rp.event_time()"], "no-event-time",
                 id="window on a source without event time"),
    pytest.param(non_boolean_filter, {}, rp.TypeMismatchError,
                 ["row filter must be boolean", "amt is Float64"], "non-boolean-filter", id="tx[tx.amt]"),
    pytest.param(python_and, {}, rp.TypeMismatchError,
                 ["truth value", "amt > 1", "use & | ~ instead of and / or / not"], "python-and", id="and"),
    pytest.param(python_or, {}, rp.TypeMismatchError,
                 ["truth value", "status = 'failed'", "use & | ~ instead of and / or / not"], "python-or",
                 id="or"),
    pytest.param(python_not, {}, rp.TypeMismatchError,
                 ["truth value", "amt > 1"], "python-not", id="not"),
    pytest.param(count_without_window, {}, rp.WindowError,
                 ["call .window(spec) before aggregating"], "count-without-window", id="count() without window()"),
    pytest.param(sum_without_window, {}, rp.WindowError,
                 ["call .window(spec) before aggregating"], "sum-without-window", id="sum() without window()"),
    pytest.param(string_plus_number, {}, rp.TypeMismatchError,
                 ["'+' needs numbers", "merchant is String", "merchant + 1"], "string-plus-number",
                 id="tx.merchant + 1"),
    pytest.param(compare_string_with_number, {}, rp.TypeMismatchError,
                 ["cannot compare String with Int64", "status = 3"], "string-eq-number", id="tx.status == 3"),
    pytest.param(groupby_not_a_name, {}, rp.SchemaError,
                 ["groupby() takes a column name or a list of names, got 3"], "groupby-int", id="groupby(3)"),
    pytest.param(window_not_a_spec, {}, rp.WindowError,
                 ["window() takes rp.sliding(...)", "got '1h'"], "window-str", id="window('1h')"),
    pytest.param(wrong_call_inside, {}, rp.FeatureError,
                 ["transformation wrong_call_inside failed: TypeError", "count()"], "wrong-call",
                 id="count('amt')"),
    pytest.param(python_error_in_body, {}, rp.FeatureError,
                 ["transformation python_error_in_body failed: TypeError", "len()"], "python-error",
                 id="len(tx.amt)"),
]


@pytest.mark.parametrize(("transformation", "options", "error", "fragments", "marker"), BODY_ERRORS)
def test_error_in_transformation_body_names_the_user_line(
    transformation: Any, options: dict[str, Any], error: type[rp.RelplanError], fragments: list[str], marker: str
) -> None:
    with pytest.raises(error) as info:
        transformation(window=rp.sliding("1h"), **options)
    assert_error(info.value, *fragments, at=line_of(marker))
    assert info.value.where is not None and transformation.name in info.value.where


def test_body_error_location_shows_the_source_line() -> None:
    with pytest.raises(rp.SchemaError) as info:
        unknown_groupby(window=rp.sliding("1h"))
    assert info.value.where is not None
    assert info.value.where.endswith('return tx.groupby("nope").window(wspec).count()  # unknown-groupby')


def test_transformation_returning_a_non_feature() -> None:
    @rp.transformation  # returns-a-frame
    def returns_a_frame(tx: Transactions, wspec: rp.WindowSpec):
        return tx[tx.amt > 0]

    with pytest.raises(rp.FeatureError) as info:
        returns_a_frame(window=rp.sliding("1h"))
    assert_error(
        info.value, "transformation returns_a_frame must return a windowed aggregate", "returned DataFrame",
        at=line_of("returns-a-frame"),
    )

    @rp.transformation  # returns-a-series
    def returns_a_series(tx: Transactions, wspec: rp.WindowSpec):
        return tx.amt * 2

    with pytest.raises(rp.FeatureError) as info:
        returns_a_series(window=rp.sliding("1h"))
    assert_error(info.value, "returns_a_series", "returned Series", at=line_of("returns-a-series"))

    @rp.transformation  # returns-none
    def returns_none(tx: Transactions, wspec: rp.WindowSpec):
        tx.groupby("account_id").window(wspec).count()  # forgot the return

    with pytest.raises(rp.FeatureError) as info:
        returns_none(window=rp.sliding("1h"))
    assert_error(info.value, "returns_none", "returned NoneType", at=line_of("returns-none"))


# ---- window specifications ----------------------------------------------------


@pytest.mark.parametrize(
    ("size", "fragments"),
    [
        ("0h", ["sliding window size must be positive", "'0h'"]),
        ("-1h", ["sliding window size must be positive", "'-1h'"]),
        ("1 fortnight", ["unknown unit 'fortnight'", "'1 fortnight'"]),
        ("abc", ["cannot parse sliding window size 'abc'", "'1h'"]),
        ("", ["cannot parse sliding window size ''"]),
        ("1.5h", ["cannot parse sliding window size '1.5h'"]),
        (dt.timedelta(0), ["sliding window size must be positive", "timedelta(0)"]),
        (dt.timedelta(hours=-1), ["sliding window size must be positive"]),
        (None, ["sliding window size must be a string like '1h' or a timedelta, got None"]),
        (1.5, ["got 1.5"]),
    ],
)
def test_bad_sliding_window_size(size: Any, fragments: list[str]) -> None:
    with pytest.raises(rp.WindowError) as info:
        rp.sliding(size)  # sliding-call
    assert_error(info.value, *fragments, at=line_of("sliding-call"))


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: rp.tumbling("0m"), ["tumbling window size must be positive", "'0m'"]),
        (lambda: rp.tumbling("1 month"), ["unknown unit 'month'", "'1 month'"]),
        (lambda: rp.hopping("1h", "2h"), ["hop slide 2h is larger than its size 1h"]),
        (lambda: rp.hopping("1h", "0s"), ["hopping window slide must be positive", "'0s'"]),
        (lambda: rp.hopping("-1h", "1m"), ["hopping window size must be positive", "'-1h'"]),
    ],
)
def test_bad_time_window(make: Any, fragments: list[str]) -> None:
    with pytest.raises(rp.WindowError) as info:
        make()
    assert_error(info.value, *fragments)
    assert info.value.where is not None and info.value.where.startswith(f"{_THIS.name}:")


def test_hop_slide_larger_than_size_is_reported_at_the_call() -> None:
    with pytest.raises(rp.WindowError) as info:
        rp.hopping("1h", "2h")  # hop-call
    assert_error(info.value, "slide 2h", "size 1h", at=line_of("hop-call"))


def test_bad_window_argument_to_a_transformation() -> None:
    with pytest.raises(rp.FeatureError) as info:
        failed_count(window="1h")  # window-string
    assert_error(info.value, "window of failed_count must be rp.sliding(...)", "got '1h'", at=line_of("window-string"))
    with pytest.raises(rp.FeatureError) as info:
        failed_count()  # window-missing
    assert_error(info.value, "transformation failed_count takes a window", at=line_of("window-missing"))
    with pytest.raises(rp.FeatureError) as info:
        failed_count(window=rp.sliding("1h"), threshold=3)  # unknown-option
    assert_error(info.value, "failed_count has no parameter(s) ['threshold']", at=line_of("unknown-option"))
    with pytest.raises(rp.FeatureError) as info:
        failed_count(window=rp.sliding("1h"), name="failed count")  # bad-name
    assert_error(info.value, "feature name 'failed count' must be an identifier", at=line_of("bad-name"))


# ---- compile ----------------------------------------------------------------


@rp.transformation
def total_a(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["amt"].window(wspec).sum()  # dup-definition-a


@rp.transformation
def total_b(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("cc_num")["amt"].window(wspec).sum()  # dup-definition-b


def test_two_features_with_the_same_name_name_both_definitions() -> None:
    a = total_a(window=rp.sliding("1h"), name="total")
    b = total_b(window=rp.sliding("1h"), name="total")
    with pytest.raises(rp.FeatureError) as info:
        rp.compile([a, b])
    e = info.value
    assert_error(e, "two features are named 'total'", "pass name=")
    first, second = line_of("dup-definition-a"), line_of("dup-definition-b")
    assert f"one defined at {first} in total_a" in e.message
    assert f"the other at {second} in total_b" in e.message


def test_same_transformation_twice_names_both_calls() -> None:
    one = failed_count(window=rp.sliding("1h"))  # first-call
    two = failed_count(window=rp.sliding("1h"))  # second-call
    with pytest.raises(rp.FeatureError) as info:
        rp.compile([one, two])
    assert_error(info.value, "two features are named 'failed_count_1h'")
    assert f"made at {line_of('first-call')} in " in info.value.message
    assert f"made at {line_of('second-call')} in " in info.value.message


def test_agg_columns_clash_with_another_feature() -> None:
    @rp.transformation
    def stats(tx: Transactions, wspec: rp.WindowSpec):
        return tx.groupby("account_id").window(wspec).agg(n="count")

    clash = failed_count(window=rp.sliding("1h"), name="stats_1h_n")
    with pytest.raises(rp.FeatureError) as info:
        rp.compile([stats(window=rp.sliding("1h")), clash])
    assert_error(info.value, "two features are named 'stats_1h_n'")


def test_feature_named_like_a_source_column() -> None:
    with pytest.raises(rp.FeatureError) as info:
        rp.compile([failed_count(window=rp.sliding("1h"), name="amt")])
    assert_error(info.value, "feature 'amt' has the name of a column of Transactions")


def test_compile_an_uncalled_transformation() -> None:
    with pytest.raises(rp.FeatureError) as info:
        rp.compile([failed_count])
    assert_error(
        info.value, "failed_count is a transformation, not a feature",
        "failed_count(window=rp.sliding('1h'))",
    )
    assert info.value.where is not None and "in failed_count" in info.value.where
    with pytest.raises(rp.FeatureError) as info:
        rp.compile(failed_count)
    assert_error(info.value, "failed_count is a transformation, not a feature")


@pytest.mark.parametrize(
    ("features", "fragment"),
    [
        ([], "compile() needs at least one feature"),
        ([3], "compile() takes features, got int: 3"),
        (None, "compile() takes a feature or a list of features, got NoneType"),
        ("failed_count", "features ['failed_count'] are given by name: pass catalog=rp.Catalog(path)"),
    ],
)
def test_compile_of_non_features(features: Any, fragment: str) -> None:
    with pytest.raises(rp.FeatureError) as info:
        rp.compile(features)
    assert_error(info.value, fragment)


def test_source_declaration_errors() -> None:
    with pytest.raises(rp.SchemaError) as info:

        class BadType(rp.Source):
            amount: float

    assert_error(info.value, "source BadType", "column 'amount'", "use a relplan type")

    with pytest.raises(rp.SchemaError) as info:

        class BadEventTime(rp.Source):
            when: rp.String = rp.event_time()

    assert_error(info.value, "event-time column 'when' must be rp.Timestamp, not String")


# ---- execution ----------------------------------------------------------------


@pytest.fixture(scope="module")
def plan() -> rp.Plan:
    return rp.compile([failed_count(window=rp.sliding("1h"))])


def test_valid_table_runs(plan: rp.Plan) -> None:
    out = rp.execute(plan, engine="duckdb", tables={"Transactions": transactions_table()}).sort_by("ts")
    assert out.column("failed_count_1h").to_pylist() == [0, 1, 1]


def test_table_lacking_a_column(plan: rp.Plan) -> None:
    table = transactions_table().drop_columns(["amt"])
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transactions": table})
    assert_error(info.value, "source 'Transactions' lacks column 'amt' (Float64)", "'merchant'")


def test_table_with_a_wrong_column_type(plan: rp.Plan) -> None:
    table = transactions_table()
    table = table.set_column(0, "cc_num", pa.array(["1", "2", "3"]))
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transactions": table})
    assert_error(info.value, "column 'cc_num'", "source 'Transactions'", "string", "declares Int64")


def test_table_with_a_null_event_time(plan: rp.Plan) -> None:
    table = transactions_table()
    i = table.schema.get_field_index("ts")
    table = table.set_column(i, "ts", pa.array([T0, None, T0], pa.timestamp("us", "UTC")))
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transactions": table})
    assert_error(info.value, "event-time column 'ts'", "source 'Transactions'", "1 NULL value(s)")


def test_table_with_a_non_utc_time_zone(plan: rp.Plan) -> None:
    table = transactions_table()
    i = table.schema.get_field_index("ts")
    table = table.set_column(i, "ts", table.column("ts").cast(pa.timestamp("us", "Europe/Paris")))
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transactions": table})
    assert_error(info.value, "column 'ts'", "Europe/Paris")


def test_pandas_column_pyarrow_cannot_read(plan: rp.Plan) -> None:
    pytest.importorskip("pandas")
    frame = transactions_table().to_pandas()
    frame["cc_num"] = [1, "two", 3]  # an object column pyarrow cannot convert
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transactions": frame})
    assert_error(info.value, "source 'Transactions'", "cc_num")


def test_missing_and_malformed_tables(plan: rp.Plan) -> None:
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transaction": transactions_table()})
    assert_error(info.value, "no table given for source 'Transactions'", "given: ['Transaction']")
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables={"Transactions": 42})
    assert_error(info.value, "table for source 'Transactions' must be a pyarrow Table", "got int")
    with pytest.raises(rp.DataError) as info:
        rp.execute(plan, engine="duckdb", tables=[transactions_table()])  # type: ignore[arg-type]
    assert_error(info.value, "tables= takes a dict", "got list")


def test_unknown_engine(plan: rp.Plan) -> None:
    with pytest.raises(rp.RelplanError) as info:
        rp.execute(plan, engine="duckdbb", tables={"Transactions": transactions_table()})
    assert_error(info.value, "unknown engine 'duckdbb'", "duckdb")
    with pytest.raises(rp.RelplanError) as info:
        plan.to_sql("postgres")
    assert_error(info.value, "unknown engine 'postgres'", "known engines: duckdb")


def test_execute_of_a_non_plan_and_unknown_output(plan: rp.Plan) -> None:
    with pytest.raises(rp.RelplanError) as info:
        rp.execute(failed_count(window=rp.sliding("1h")), tables={})  # type: ignore[arg-type]
    assert_error(info.value, "execute() takes a plan from rp.compile(...), got Feature")
    with pytest.raises(rp.RelplanError) as info:
        rp.execute(plan, tables={"Transactions": transactions_table()}, output="features")
    assert_error(info.value, "plan has no output 'features'", "'Transactions'")
