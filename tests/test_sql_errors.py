"""rp.sql's errors on bad input: the class, what the user wrote, and its line and column.

One test per mistake of issue 19 item 6 (unknown table or column with the closest name
suggested, an ambiguous column, an aggregate without the GROUP BY it needs, a window
frame without ORDER BY, a non-deterministic function, DDL/DML and several statements,
an unknown dialect) and per limit of the reader (nesting, size, depth, expansion).
"""

from __future__ import annotations

import re

import pytest

import relplan as rp
from relplan.compiler.sql import expressions, reader
from relplan.ir.errors import RelplanError, SchemaError, SqlError, TypeMismatchError, UnsupportedError

DIALECTS = ("duckdb", "spark", "flink")


class Payments(rp.Source):
    amount: rp.Float64
    n: rp.Int64
    status: rp.String
    account_id: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time()


class Accounts(rp.Source):
    tier: rp.String
    account_id: rp.Int64 = rp.key()
    opened: rp.Timestamp = rp.event_time()


SOURCES = [Payments, Accounts]


def refused(query: str, kind: type[RelplanError], dialect: str = "duckdb") -> RelplanError:
    with pytest.raises(kind) as info:
        rp.sql(query, sources=SOURCES, dialect=dialect)
    return info.value


def assert_at(error: RelplanError, query: str, fragment: str, occurrence: int = 1) -> None:
    """The error is located at the ``occurrence``-th ``fragment`` of ``query``: its line
    and column (1-based), with that line shown."""
    start = -1
    for _ in range(occurrence):
        start = query.index(fragment, start + 1)
    line = query.count("\n", 0, start) + 1
    column = start - (query.rfind("\n", 0, start) + 1) + 1
    assert error.where is not None, f"no location in {error}"
    assert error.where.startswith(f"line {line}, column {column} of the SQL: "), error.where
    shown = query.splitlines()[line - 1].strip()
    assert (shown if len(shown) <= 120 else shown[:50]) in error.where  # a long line is shown in part
    assert f"at line {line}, column {column}" in str(error)


# ---- unknown names ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_unknown_table_is_named_with_the_closest_one(dialect: str) -> None:
    query = "SELECT account_id, amount\nFROM   Paymets\nWHERE  amount > 0"
    e = refused(query, SchemaError, dialect)
    assert "unknown table 'Paymets'" in e.message
    assert "did you mean 'Payments'?" in e.message
    assert "Payments, Accounts" in e.message  # what the query can read
    assert_at(e, query, "Paymets")


def test_an_unknown_table_far_from_every_name_lists_them_without_a_guess() -> None:
    e = refused("SELECT n FROM ledger_entries", SchemaError)
    assert "unknown table 'ledger_entries'" in e.message and "did you mean" not in e.message
    assert "Payments, Accounts" in e.message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_unknown_column_is_named_with_the_closest_one(dialect: str) -> None:
    query = "SELECT account_id,\n       SUM(amout) AS total\nFROM Payments\nGROUP BY account_id"
    e = refused(query, SchemaError, dialect)
    assert "unknown column 'amout'" in e.message
    assert "did you mean 'amount'?" in e.message
    assert_at(e, query, "amout")


def test_an_unknown_qualified_column_is_named_with_its_qualifier() -> None:
    query = "SELECT p.amount, a.teir\nFROM Payments p JOIN Accounts a ON p.account_id = a.account_id"
    e = refused(query, SchemaError)
    assert "unknown column 'a.teir'" in e.message and "did you mean 'a.tier'?" in e.message
    assert_at(e, query, "a.teir")


def test_an_unknown_column_in_where_is_located_there() -> None:
    query = "SELECT n\nFROM Payments\nWHERE stauts = 'failed'"
    e = refused(query, SchemaError, "spark")
    assert "unknown column 'stauts'" in e.message and "did you mean 'status'?" in e.message
    assert_at(e, query, "stauts")


def test_an_ambiguous_column_names_the_relations_that_have_it() -> None:
    query = "SELECT amount, account_id\nFROM Payments p\nJOIN Accounts a ON p.account_id = a.account_id"
    e = refused(query, SchemaError)
    assert "column 'account_id' is ambiguous" in e.message
    assert "a, p" in e.message and "qualify it" in e.message
    assert_at(e, query, "account_id")


# ---- aggregates and windows ---------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_aggregate_without_the_group_by_it_needs(dialect: str) -> None:
    query = "SELECT status, COUNT(*) AS n_payments\nFROM Payments"
    e = refused(query, SchemaError, dialect)
    assert "column status must appear in GROUP BY or be used in an aggregate function" in e.message
    assert_at(e, query, "status")


def test_a_column_missing_from_a_group_by() -> None:
    query = "SELECT account_id, status, SUM(amount) AS total\nFROM Payments\nGROUP BY account_id"
    e = refused(query, SchemaError)
    assert "column status must appear in GROUP BY" in e.message
    assert_at(e, query, "status")


def test_an_aggregate_in_where() -> None:
    query = "SELECT account_id\nFROM Payments\nWHERE SUM(amount) > 100"
    e = refused(query, SchemaError)
    assert "aggregate in WHERE" in e.message and "HAVING" in e.message
    assert_at(e, query, "SUM(amount)")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "frame",
    ["RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW", "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW"],
)
def test_a_window_frame_without_order_by(dialect: str, frame: str) -> None:
    query = f"SELECT account_id,\n       SUM(amount) OVER (PARTITION BY account_id {frame}) AS s\nFROM Payments"
    e = refused(query, SchemaError, dialect)
    assert "window frame (ROWS/RANGE) needs ORDER BY a time column" in e.message
    assert_at(e, query, "SUM(amount)")


def test_a_rows_frame_is_refused_naming_rows() -> None:
    query = "SELECT SUM(amount) OVER (PARTITION BY account_id ORDER BY ts\n    ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS s\nFROM Payments"
    e = refused(query, UnsupportedError)
    assert e.message.startswith("ROWS frame is not supported")
    assert "RANGE BETWEEN INTERVAL" in e.message  # the way out
    assert e.where is not None and e.where.startswith("line 2, ")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("frame", [
    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW", "ROWS UNBOUNDED PRECEDING", "ROWS 2 PRECEDING",
    "ROWS BETWEEN 1 PRECEDING AND 1 PRECEDING", "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
])
def test_a_rows_frame_whose_rows_depend_on_the_order_among_ties_is_refused_saying_why(dialect: str, frame: str) -> None:
    query = f"SELECT SUM(amount) OVER (PARTITION BY account_id ORDER BY ts\n    {frame}) AS s\nFROM Payments"
    e = refused(query, UnsupportedError, dialect)
    assert e.message.startswith("ROWS frame is not supported")
    assert "tied on the order" in e.message and "depends on that order" in e.message
    assert "UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING" in e.message  # what is read
    assert e.where is not None and e.where.startswith("line 2, ")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_row_alone_needs_an_order_by(dialect: str) -> None:
    # Without ORDER BY, Flink 2.3 (batch) gives ROWS BETWEEN CURRENT ROW AND CURRENT ROW the
    # whole partition and DuckDB the row alone (measured): refused rather than read either way.
    query = "SELECT SUM(amount) OVER (PARTITION BY account_id\n    ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS s\nFROM Payments"
    e = refused(query, SchemaError, dialect)
    assert "needs ORDER BY" in e.message
    whole = "SELECT SUM(amount) OVER (PARTITION BY account_id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS s FROM Payments"
    assert "frame=(-inf, t]" in rp.sql(whole, sources=[Payments], dialect=dialect).explain()  # the whole partition


# ---- non-deterministic functions ----------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("call", "named"),
    [("RANDOM()", "RANDOM"), ("rand()", "RAND"), ("NOW()", "NOW"), ("CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"),
     ("UUID()", "UUID")],
)
def test_a_non_deterministic_function_is_refused(dialect: str, call: str, named: str) -> None:
    query = f"SELECT account_id,\n       amount * {call} AS noisy\nFROM Payments"
    e = refused(query, UnsupportedError, dialect)
    assert e.message.startswith(f"{named} is non-deterministic"), e.message
    assert "training and serving" in e.message
    assert_at(e, query, call.rstrip("()"))


def test_a_non_deterministic_function_in_where_is_refused() -> None:
    query = "SELECT n FROM Payments\nWHERE ts < NOW()"
    e = refused(query, UnsupportedError, "flink")
    assert e.message.startswith("NOW is non-deterministic")
    assert_at(e, query, "NOW")


# ---- statements ---------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("CREATE TABLE big AS SELECT * FROM Payments", "CREATE"),
        ("INSERT INTO Payments (n) VALUES (1)", "INSERT"),
        ("DELETE FROM Payments WHERE n = 1", "DELETE"),
        ("UPDATE Payments SET n = 0", "UPDATE"),
        ("DROP TABLE Payments", "DROP"),
    ],
)
def test_ddl_and_dml_are_refused(dialect: str, statement: str, kind: str) -> None:
    query = f"\n  {statement}"
    e = refused(query, SqlError, dialect)
    assert f"not {'an' if kind[0] in 'AEIOU' else 'a'} {kind} statement" in e.message
    assert "relplan never changes tables" in e.message
    assert_at(e, query, statement.split()[0])


def test_select_into_is_refused_as_it_creates_a_table() -> None:
    e = refused("SELECT n INTO copy_of_payments FROM Payments", SqlError)
    assert "SELECT ... INTO creates a table" in e.message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_several_statements_are_refused_naming_the_second(dialect: str) -> None:
    query = "SELECT n FROM Payments;\nDROP TABLE Payments"
    e = refused(query, SqlError, dialect)
    assert "the SQL has 2 statements; rp.sql reads one query" in e.message
    assert "(the second: DROP TABLE Payments)" in e.message
    assert_at(e, query, "DROP")


def test_a_trailing_semicolon_is_one_statement() -> None:
    assert isinstance(rp.sql("SELECT n FROM Payments;", sources=SOURCES), rp.Plan)


def test_no_statement_at_all() -> None:
    for text in ("", "  ", ";", "-- only a comment"):
        e = refused(text, SqlError)
        assert "no statement" in e.message


def test_a_syntax_error_is_located() -> None:
    query = "SELECT n,\n       amount +\nFROM Payments"
    e = refused(query, SqlError)
    assert e.message.startswith("cannot parse the SQL (duckdb)")
    assert e.where is not None and e.where.startswith("line 3, ")


def test_an_unclosed_quote_is_located() -> None:
    query = "SELECT n\nFROM Payments\nWHERE status = 'failed"
    e = refused(query, SqlError)
    assert "never closed" in e.message
    assert_at(e, query, "'failed")


# ---- dialects -----------------------------------------------------------------------------


def test_a_dialect_sqlglot_knows_but_relplan_does_not_model() -> None:
    e = refused("SELECT n FROM Payments", SqlError, "postgres")
    assert "unknown dialect 'postgres'" in e.message
    assert "sqlglot knows it, but relplan does not model its semantics" in e.message
    assert "duckdb, spark, flink" in e.message


def test_a_dialect_nobody_knows() -> None:
    e = refused("SELECT n FROM Payments", SqlError, "cobol-sql")
    assert "unknown dialect 'cobol-sql' (sqlglot does not know it)" in e.message
    assert "duckdb, spark, flink" in e.message


def test_a_dialect_that_is_not_a_name() -> None:
    e = refused("SELECT n FROM Payments", SqlError, None)  # type: ignore[arg-type]
    assert "dialect= takes a name" in e.message


def test_dialect_names_ignore_case() -> None:
    assert isinstance(rp.sql("SELECT n FROM Payments", sources=SOURCES, dialect="Spark"), rp.Plan)


# ---- limits -------------------------------------------------------------------------------


def test_parentheses_nested_past_the_limit() -> None:
    deep = reader.MAX_PARENS + 1
    query = "SELECT\n  " + "(" * deep + "n" + ")" * deep + " AS x\nFROM Payments"
    e = refused(query, SqlError)
    assert f"more than {reader.MAX_PARENS} deep" in e.message and "parentheses" in e.message
    assert_at(e, query, "(", occurrence=deep)


def test_parentheses_nested_up_to_the_limit_compile() -> None:
    depth = reader.MAX_PARENS
    query = "SELECT " + "(" * depth + "n" + ")" * depth + " AS x FROM Payments"
    for d in DIALECTS:
        assert isinstance(rp.sql(query, sources=SOURCES, dialect=d), rp.Plan)


def test_case_expressions_nested_past_the_limit() -> None:
    deep = reader.MAX_PARENS + 1
    query = "SELECT " + "CASE WHEN n > 0 THEN " * deep + "1" + " ELSE 0 END" * deep + " AS x FROM Payments"
    e = refused(query, SqlError, "spark")
    assert "CASE expressions" in e.message
    assert e.where is not None and "line 1, column " in e.where


def test_a_chain_of_operators_past_the_depth_limit() -> None:
    query = "SELECT n FROM Payments WHERE " + " AND ".join(["n > 0"] * (reader.MAX_DEPTH + 1))
    e = refused(query, SqlError)
    assert f"nest more than {reader.MAX_DEPTH} deep" in e.message and "CTEs" in e.message


def test_a_query_past_the_size_limit() -> None:
    query = "SELECT n FROM Payments WHERE status IN (" + ", ".join(["'x'"] * (reader.MAX_CHARS // 5)) + ")"
    assert len(query) > reader.MAX_CHARS
    e = refused(query, SqlError)
    assert f"{len(query):,} characters long" in e.message and f"at most {reader.MAX_CHARS:,}" in e.message


def test_an_expression_that_repeats_its_operands_past_the_limit() -> None:
    # SQL's % is written in the IR with its operands repeated: nesting it grows the SQL
    # exponentially, refused before it is built.
    query = "SELECT " + "(" * 8 + "n" + " % 7)" * 8 + " AS x\nFROM Payments"
    e = refused(query, UnsupportedError)
    assert f"relplan reads at most {expressions.MAX_EXPANDED:,}" in e.message
    assert "% 7" in e.message and "CTE" in e.message
    assert e.where is not None and e.where.startswith("line 1, ")


@pytest.mark.parametrize(
    ("literal", "kind", "words"),
    [("9223372036854775808", TypeMismatchError, "does not fit BIGINT"),
     ("1e999", TypeMismatchError, "does not fit DOUBLE"),
     ("9" * 5000, TypeMismatchError, "(5,000 characters) does not fit BIGINT")],
)
def test_a_literal_too_large_for_its_type(literal: str, kind: type[RelplanError], words: str) -> None:
    query = f"SELECT n + {literal} AS x FROM Payments"
    e = refused(query, kind)
    assert words in e.message
    assert len(e.message) < 300  # the number is shortened, not repeated in full
    assert_at(e, query, literal[:20])


def test_the_smallest_bigint_is_a_literal() -> None:
    assert isinstance(rp.sql("SELECT n + -9223372036854775808 AS x FROM Payments", sources=SOURCES), rp.Plan)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_decimal_arithmetic_that_relplan_would_do_in_double_is_refused(dialect: str) -> None:
    # 1.1 is a DECIMAL in every dialect: n * 1.1 is exact there (3.3), 3.3000000000000003 in DOUBLE.
    query = "SELECT account_id,\n       n * 1.1 AS scaled\nFROM Payments"
    e = refused(query, UnsupportedError, dialect)
    assert e.message.startswith(f"1.1 is a DECIMAL in {dialect}, so n * 1.1 is exact decimal arithmetic there")
    assert "CAST(1.1 AS DOUBLE)" in e.message and "1.1e0" in e.message
    assert_at(e, query, "n * 1.1")
    for fine in ("n * 1.1e0", "n * CAST(1.1 AS DOUBLE)", "amount * 1.1", "n > 1.5"):
        assert isinstance(rp.sql(f"SELECT {fine} AS x FROM Payments", sources=SOURCES, dialect=dialect), rp.Plan)


# ---- db.table -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", ["main.Payments", "memory.main.Payments", "default_database.Payments", "db.Payments"])
def test_a_table_named_with_a_database_is_refused_naming_what_was_written(dialect: str, name: str) -> None:
    # The engines read their default database's Payments there (DuckDB's main, Flink's
    # default_database) or another table; relplan's sources belong to no database.
    query = f"SELECT account_id\nFROM {name} AS p"
    e = refused(query, SqlError, dialect)
    assert e.message.startswith(f"table {name} names a database") and "write Payments" in e.message
    assert_at(e, query, name)


def test_a_column_named_with_a_database_is_refused() -> None:
    query = "SELECT main.Payments.amount\nFROM Payments"
    e = refused(query, SqlError)
    assert e.message.startswith("column main.Payments.amount names a database") and "write Payments.amount" in e.message
    assert_at(e, query, "main.Payments.amount")


def test_sql_features_refuse_a_table_named_with_a_database_too() -> None:
    with pytest.raises(SqlError, match="table main.Payments names a database"):
        rp.sql_features("SELECT SUM(amount) OVER (PARTITION BY account_id ORDER BY ts) AS s FROM main.Payments", sources=SOURCES)


# ---- window aggregates Spark and Flink refuse -------------------------------------------------


@pytest.mark.parametrize("dialect", ["spark", "flink"])
@pytest.mark.parametrize(("agg", "what"), [
    ("COUNT(DISTINCT status)", "COUNT(DISTINCT ...) OVER (...)"),
    ("COUNT(*) FILTER (WHERE status = 'failed')", "COUNT(...) FILTER (WHERE ...) OVER (...)"),
    ("SUM(amount) FILTER (WHERE status = 'failed')", "SUM(...) FILTER (WHERE ...) OVER (...)"),
])
def test_spark_and_flink_refuse_distinct_and_filter_over_a_window_as_their_engines_do(dialect: str, agg: str, what: str) -> None:
    # Measured (shared ENGINE-FACTS, and again on pyspark 3.5 and Flink 2.3 batch): Spark
    # says DISTINCT_WINDOW_FUNCTION_UNSUPPORTED and "Window aggregate function with filter
    # predicate is not supported yet"; Flink "OVER must be applied to aggregate function"
    # and fails to plan the distinct one.
    query = f"SELECT account_id,\n       {agg} OVER (PARTITION BY account_id ORDER BY ts) AS c\nFROM Payments"
    e = refused(query, UnsupportedError, dialect)
    assert e.message.startswith(f"{dialect.capitalize()} refuses {what}")
    assert_at(e, query, agg)
    rp.sql(query, sources=SOURCES, dialect="duckdb")  # DuckDB reads both


def test_spark_reads_its_own_way_to_count_distinct_over_a_window() -> None:
    plan = rp.sql("SELECT SIZE(COLLECT_SET(status) OVER (PARTITION BY account_id ORDER BY ts)) AS c FROM Payments",
                  sources=SOURCES, dialect="spark")
    assert "count_distinct(status)" in plan.explain()


# ---- JOIN ... USING ----------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["", "LEFT ", "RIGHT ", "FULL "])
def test_using_keys_that_do_not_compare_are_named_as_written(side: str) -> None:
    query = f"SELECT account_id\nFROM Payments p {side}JOIN (SELECT tier AS account_id FROM Accounts) a USING (account_id)"
    e = refused(query, TypeMismatchError)
    assert "'p.account_id' (Int64)" in e.message and "'a.account_id' (String)" in e.message
    assert e.where is not None and e.where.startswith("line 2, ")


def test_a_using_column_is_read_unqualified_and_its_sides_qualified() -> None:
    plan = rp.sql("SELECT account_id, p.account_id AS pid, a.account_id AS aid, tier\n"
                  "FROM Payments p FULL JOIN Accounts a USING (account_id)", sources=SOURCES)
    text = plan.explain()
    assert "COALESCE(account_id, " in text  # FULL: the one that is there
    with pytest.raises(SchemaError, match="unknown column 'x.account_id'"):
        rp.sql("SELECT x.account_id FROM Payments p JOIN Accounts a USING (account_id)", sources=SOURCES)


@pytest.mark.parametrize(("frame", "what"), [
    ("ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING", "the whole partition"),
    ("ROWS BETWEEN CURRENT ROW AND CURRENT ROW", "the row alone"),
])
def test_a_rows_frame_rp_sql_reads_is_no_feature_and_the_error_says_so(frame: str, what: str) -> None:
    query = f"SELECT account_id,\n       SUM(amount) OVER (PARTITION BY account_id ORDER BY ts {frame}) AS s\nFROM Payments"
    with pytest.raises(UnsupportedError) as info:
        rp.sql_features(query, sources=SOURCES)
    assert info.value.message.startswith(f"a ROWS frame of {what} is not a feature's window")
    assert "rp.sql reads it" in info.value.message
    assert info.value.where is not None and info.value.where.startswith("line 2, ")
    rp.sql(query, sources=SOURCES)  # and it does


def test_flinks_cast_of_a_timestamp_to_a_date_is_refused_and_relplans_own_form_read() -> None:
    """Flink's CAST(ts AS DATE) truncates days toward zero (a day late before 1970), which
    the IR cannot say; the form relplan writes for the day holding ts reads back."""
    with pytest.raises(rp.UnsupportedError, match=r"Flink's CAST\(<timestamp> AS DATE\) is a day late before 1970") as e:
        rp.sql("SELECT account_id,\n  CAST(ts AS DATE) AS d FROM Payments", sources=[Payments], dialect="flink")
    assert "line 2" in str(e.value)
    own = ("SELECT CASE WHEN CAST(CAST(ts AS DATE) AS TIMESTAMP(6)) > ts THEN CAST(ts AS DATE) - INTERVAL '1' DAY "
           "ELSE CAST(ts AS DATE) END AS d FROM Payments")
    assert "d := CAST(ts AS Date)" in rp.sql(own, sources=[Payments], dialect="flink").explain()
    for dialect in ("duckdb", "spark"):  # they cast to the day holding the time: read
        assert "CAST(ts AS Date)" in rp.sql("SELECT CAST(ts AS DATE) AS d FROM Payments", sources=[Payments], dialect=dialect).explain()


@pytest.mark.parametrize(("cast", "length"), [("VARCHAR(3)", "3 characters"), ("CHAR(3)", "3 characters"),
                                              ("VARCHAR", "1 character"), ("CHAR", "1 character")])
def test_flinks_casts_that_cut_the_text_are_refused(cast: str, length: str) -> None:
    """Flink cuts a cast to VARCHAR(n)/CHAR(n) to n characters (1 without a length); DuckDB
    and Spark ignore n. Read without its length (sqlglot's Hive reading), the cast would be
    a plain string cast, silently."""
    with pytest.raises(rp.UnsupportedError, match=rf"CAST to {re.escape(cast)} cuts the text to {length} in Flink"):
        rp.sql(f"SELECT CAST(status AS {cast}) AS x FROM Payments", sources=[Payments], dialect="flink")
    read = "x := CAST(status AS String)"
    for dialect in ("duckdb", "spark"):  # a string cast there, whatever n
        assert read in rp.sql(f"SELECT CAST(status AS {cast}) AS x FROM Payments", sources=[Payments], dialect=dialect).explain()
    for whole in ("STRING", "VARCHAR(2147483647)"):  # Flink's STRING, spelled either way
        assert read in rp.sql(f"SELECT CAST(status AS {whole}) AS x FROM Payments", sources=[Payments], dialect="flink").explain()


def test_each_engines_distinct_count_over_a_window_is_read_in_its_own_dialect_only() -> None:
    """Spark's SIZE(COLLECT_SET(x) OVER w) is not Flink SQL (no SIZE, no COLLECT_SET there)."""
    spark = "SELECT SIZE(COLLECT_SET(status) OVER (PARTITION BY account_id)) AS x FROM Payments"
    assert "count_distinct" in rp.sql(spark, sources=[Payments], dialect="spark").explain()
    with pytest.raises(rp.UnsupportedError, match=r"SIZE\(\) is not supported"):
        rp.sql(spark, sources=[Payments], dialect="flink")


@pytest.mark.parametrize("exclude", ["CURRENT ROW", "GROUP", "TIES"])
@pytest.mark.parametrize("frame", ["ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING",
                                   "RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW"])
def test_a_frame_that_excludes_rows_is_refused(frame: str, exclude: str) -> None:
    """EXCLUDE takes rows out of a frame (DuckDB gives 2, 1 and NULL where the frame without
    it gives 3, 3, 3): no IR frame does, so it is refused, never dropped."""
    query = f"SELECT SUM(amount) OVER (PARTITION BY account_id ORDER BY ts {frame} EXCLUDE {exclude}) AS s FROM Payments"
    for read in (rp.sql, rp.sql_features):
        with pytest.raises(rp.UnsupportedError, match=f"EXCLUDE {exclude} in a window frame is not supported"):
            read(query, sources=[Payments])
    assert "frame=" in rp.sql(query.replace(f"EXCLUDE {exclude}", "EXCLUDE NO OTHERS"), sources=[Payments]).explain()
