"""compiler/sql/scan.py: sqlglot's exact tokens, faster, or None.

The scan's one promise: for any text and each dialect relplan reads, it returns None
or a token list equal to sqlglot's tokenizer's on every field (type, text, line,
column, start, end, comments), and None wherever sqlglot's tokenizer fails. Hypothesis
checks it on SQL-like texts built from fragments (the common ones and hostile ones:
quotes and escapes, comments of every kind, unicode, odd whitespace, numbers such as
``1e5`` and ``0x1F``, ``@``, ``$``, ``::``, ``->``, ``<=>``, multi-word keywords across line
breaks) and on texts of random characters. The fast path must also be taken for the
benchmark's queries and for typical feature SQL, and rp.sql reads through it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot.errors import SqlglotError

import relplan as rp
import relplan.backends.flink_dialect  # noqa: F401  (registers "flink")
from relplan.compiler.sql import reader
from relplan.compiler.sql.scan import scan
from relplan.ir.errors import RelplanError

try:
    from bench import test_sql_frontend_bench as bench
except ImportError:  # run from elsewhere than the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import test_sql_frontend_bench as bench

DIALECTS = ("duckdb", "spark", "flink")
FIELDS = ("token_type", "text", "line", "col", "start", "end", "comments")


def _fields(tokens):
    return [tuple(getattr(t, f) for f in FIELDS) for t in tokens]


def sqlglot_tokens(text: str, dialect: str):
    """sqlglot's own tokens, or None when its tokenizer fails."""
    try:
        return sqlglot.Dialect.get_or_raise(dialect).tokenizer().tokenize(text)
    except SqlglotError:
        return None


def assert_declines_or_equals(text: str, dialect: str) -> bool:
    """The property; True when the scan read the text."""
    got = scan(text, sqlglot.Dialect.get_or_raise(dialect))
    if got is None:
        return False
    want = sqlglot_tokens(text, dialect)
    assert want is not None, f"{dialect}: the scan read {text!r}, which sqlglot's tokenizer refuses"
    assert _fields(got) == _fields(want), f"{dialect}: the scan's tokens differ from sqlglot's for {text!r}"
    return True


# ---- generated texts -----------------------------------------------------------------

COMMON = [
    "SELECT", "select", "FROM", "WHERE", "AND", "OR", "NOT", "AS", "OVER", "FILTER", "WINDOW", "RANGE", "ROWS",
    "BETWEEN", "INTERVAL", "PRECEDING", "CURRENT", "ROW", "UNBOUNDED", "CASE", "WHEN", "THEN", "ELSE", "END",
    "COUNT", "SUM", "AVG", "MAX", "MIN", "CAST", "DOUBLE", "DOUBLE PRECISION", "NULL", "TRUE", "IS", "IN",
    "DISTINCT", "WITH", "UNION ALL", "JOIN", "ON", "LIMIT", "HOUR", "DAY",
    "GROUP BY", "ORDER BY", "PARTITION BY", "group  by", "Order\tBy", "PARTITIONED BY", "SORT BY", "CLUSTER BY",
    "GROUPING SETS", "USER-DEFINED", "CHARACTER VARYING", "PRIMARY KEY", "ADD JAR", "ADD FILES",
    "GROUP", "ORDER", "PARTITION", "BY", "user", "add", "n", "N", "e", "E", "x", "X", "r", "R", "msck",
    "amount", "account_id", "ts", "_x", "t1", "f12", "status",
    "0", "1", "42", "3.5", "100.25", "007",
    "'failed'", "''", "'a b'", '"amount"', "`amount`", '""', "``",
    "(", ")", ",", ".", "*", "=", "<", ">", "+", "-", "/", "%", ";", ":", "|", "!", "[", "]",
    "<=", ">=", "<>", "!=", "||", "::", "==", "=>",
]
HOSTILE = [
    "'it''s'", "'a\\'b'", "'a\\b'", "'line\nbreak'", "'cr\rx'", '"a""b"', "`a``b`", '"a\\"b"', "'''x'''", "'unterminated",
    "N'x'", "n'x'", "X'1F'", "x'1f'", "E'\\n'", "e'x'", "R'x'", "r\"x\"", "$$x$$", "$1", "$x$ y $x$", "U&'x'",
    "1e5", "1E-3", "1.", ".5", "1.5.2", "0x1F", "0b101", "10L", "1.5BD", "1_000", "1a", "123abc",
    "@", "@x", "@@x", "$", "#", "#x", "?", "&", "^", "~", "\\", "{", "}", "{{x}}", "{% x %}", "{# x #}",
    "->", "->>", "<=>", "<->", "<<->>", "**", "//", "?::", "??", "&&", "~~", "-|-", "|>", "#>>", "^@", ":=",
    "-- comment\n", "--x", "-- trailing", "/* c */", "/**/", "/* a\nb */", "/*+ hint */", "/* a /* b */ c */",
    "/* open", "*/", "/*/", "--\r\n", "-- c\r", "/* \r\n */",
    "é", "naïve", "名前", "☃", "\u2028", "\xa0", "\x00", "\x0b", "\x0c", "\x1c", "\r", "\r\n", "\t",
    "SHOW", "EXECUTE", "FETCH", "VACUUM", "RENAME", "BEGIN", "PREPARE",
    "GROUP\nBY", "ORDER\r\nBY", "PARTITION \n BY", "USER -DEFINED", "GROUP BYx", "GROUP BY(",
]
SEPARATORS = [" ", " ", " ", "", "\n", "  ", "\t", "\r\n", "\n  ", " -- c\n", " /* c */ ", "\r", "\x0b"]


@st.composite
def sql_like(draw: st.DrawFn, hostile: bool) -> str:
    pool = COMMON + HOSTILE if hostile else COMMON
    parts = draw(st.lists(st.sampled_from(pool), min_size=0, max_size=14))
    out = []
    for p in parts:
        out.append(p)
        out.append(draw(st.sampled_from(SEPARATORS)) if hostile else draw(st.sampled_from([" ", " ", "", "\n", "  "])))
    return draw(st.sampled_from(["", " ", "\n", "-- lead\n"])) + "".join(out)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(sql_like(hostile=False))
def test_common_sql_like_texts_are_read_as_sqlglot_reads_them(text: str) -> None:
    for d in DIALECTS:
        assert_declines_or_equals(text, d)


@SETTINGS
@given(sql_like(hostile=True))
def test_hostile_texts_are_declined_or_read_as_sqlglot_reads_them(text: str) -> None:
    for d in DIALECTS:
        assert_declines_or_equals(text, d)


CHARS = "abcNnXxEeRr019_ \t\n\r'\"`()[]{},.;:*=<>+-/%|!@#$?&^~\\é\x00\x0b"


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=CHARS, max_size=40))
def test_random_characters_are_declined_or_read_as_sqlglot_reads_them(text: str) -> None:
    for d in DIALECTS:
        assert_declines_or_equals(text, d)


EDGES = [
    "USER-DEFINEDX y", "a USER-DEFINED(", "GROUP\x0bBY x", "GROUP \t BY x", "x <== y", "x <=> y", "a<@b", "a->>'$.x'",
    "ADD JAR x", "x ADD JAR y", "SELECT 1;ADD JAR x", "SELECT 1; EXECUTE x", "FETCH NEXT 1 ROWS ONLY", "e 'x'", "n\t'x'",
    "SELECT 1 -- c", "SELECT 1 --", "--", "/**/", "a/**/b", "a /* x */\n/* y */ b", "a -- x\r\n-- y\rb", "x ;-- c\n;",
    "/* c */ ; a", "a\n\n  -- c\n  ; b", "SELECT 'a' 'b'", "''", "SELECT ``", "1.5.2", "t.5", "a.*", "1-1", "--1", "-- é\nx",
]


@pytest.mark.parametrize("text", EDGES)
def test_edges_are_declined_or_read_as_sqlglot_reads_them(text: str) -> None:
    for d in DIALECTS:
        assert_declines_or_equals(text, d)


# ---- the fast path is taken ------------------------------------------------------------

FEATURE_SQL = [
    """
    SELECT account_id, ts,
           COUNT(*) FILTER (WHERE status = 'failed') OVER w AS failed_1d,
           SUM(amount) OVER w AS spend_1d,
           MAX(amount) OVER (PARTITION BY account_id ORDER BY ts) AS largest_ever
    FROM Payments
    WHERE amount > 0
    WINDOW w AS (PARTITION BY account_id ORDER BY ts
                 RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW)
    """,
    "-- spend per account\nSELECT account_id, ts, /* the day's */ SUM(amount) OVER (PARTITION BY account_id ORDER BY ts "
    "RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW) AS spend_1d -- in USD\nFROM Payments;\r\n",
    "SELECT a.account_id, COUNT(*) AS n, AVG(a.amount) AS mean FROM Payments AS a JOIN Accounts AS b "
    "ON a.account_id = b.account_id WHERE a.amount >= 10.5 AND a.amount <= 100 AND b.tier <> 'gold' "
    "AND a.status != 'ok' GROUP BY a.account_id ORDER BY n DESC LIMIT 10",
    "WITH big AS (SELECT * FROM Payments WHERE amount > 1000) SELECT account_id, ts, "
    "CASE WHEN amount > 5000 THEN 1 ELSE 0 END AS huge, CAST(amount AS DOUBLE) * 2 - 1 / 3 AS x FROM big "
    "UNION ALL SELECT account_id, ts, 0, amount % 7 FROM Payments",
]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_benchmarks_queries_take_the_fast_path(dialect: str) -> None:
    # every form in the benchmark's dialect; its main form in the others
    forms = bench.FORMS.values() if dialect == "duckdb" else [bench.per_key_named_windows]
    for form in forms:
        for q in form():
            assert assert_declines_or_equals(q, dialect), f"{dialect} declined a benchmark query:\n{q[:300]}"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("text", FEATURE_SQL)
def test_typical_feature_sql_takes_the_fast_path(dialect: str, text: str) -> None:
    text = text.replace('"', "`") if dialect != "duckdb" else text
    assert assert_declines_or_equals(text, dialect)
    assert assert_declines_or_equals(text.replace("amount", '"amount"' if dialect == "duckdb" else "`amount`"), dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "text",
    ["SELECT 'naïve'", "SELECT 'a\\b'", "SELECT 1e5", "SELECT 10L", "SELECT 0x1F", "SELECT 1.", "SELECT x FROM t GROUP\nBY x",
     "SELECT @x", "SELECT x::INT", "SELECT 'it''s'", "/*+ hint */ SELECT 1", "SELECT /* a /* b */ c */ 1", "SELECT N'x'",
     "SELECT 1 /* open", "EXECUTE x", "SELECT\x0b1"],
)
def test_what_the_scan_declines(dialect: str, text: str) -> None:
    # declined, or (a few, in some dialect) read exactly as sqlglot reads them
    got = scan(text, sqlglot.Dialect.get_or_raise(dialect))
    if got is not None:
        # '::' is a cast token sqlglot's trie reads; DuckDB has no hints, so /*+ is a comment there
        assert text == "SELECT x::INT" or (text, dialect) == ("/*+ hint */ SELECT 1", "duckdb"), f"{dialect}: read {text!r}"
        assert _fields(got) == _fields(sqlglot_tokens(text, dialect))


def test_comments_go_where_sqlglot_puts_them() -> None:
    text = "-- a\nSELECT x, -- b\n /* c */ y /* d\n e */ /* f */ FROM t /* g */ ; -- h\n"
    for d in DIALECTS:
        assert assert_declines_or_equals(text, d)
    tokens = scan(text, sqlglot.Dialect.get_or_raise("duckdb"))
    assert [t.comments for t in tokens] == [[" a"], [], [" b"], [" c ", " d\n e ", " f "], [], [" g "], [" h"]]


def test_rp_sql_reads_through_the_scan_and_errors_through_sqlglot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first, unlocated read of a query takes the scan's tokens; only the located
    read after a failure tokenizes with sqlglot, so errors are unchanged."""
    from sqlglot.tokens import Tokenizer

    calls = []
    original = Tokenizer.tokenize

    def counting(self, sql):  # noqa: ANN001, ANN202
        calls.append(sql)
        return original(self, sql)

    monkeypatch.setattr(Tokenizer, "tokenize", counting)

    class Payments(rp.Source):
        account_id: rp.Int64 = rp.key()
        amount: rp.Float64
        status: rp.String
        ts: rp.Timestamp = rp.event_time()

    features = rp.sql_features(FEATURE_SQL[0], sources=[Payments], dialect="duckdb")
    assert [f.name for f in features] == ["failed_1d", "spend_1d", "largest_ever"]
    assert calls == []
    with pytest.raises(RelplanError) as e:
        rp.sql_features("SELECT account_id, ts, SUM(nope) OVER w AS s FROM Payments WINDOW w AS (ORDER BY ts)",
                        sources=[Payments], dialect="duckdb")
    assert "nope" in str(e.value) and "line 1" in str(e.value)
    assert len(calls) == 1  # the located read
    calls.clear()
    reader.parse_query("SELECT 'naïve' AS x", "duckdb", locating=False)  # declined: sqlglot's tokenizer
    assert len(calls) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_comment_after_the_last_semicolon_is_no_second_statement(dialect: str) -> None:
    # The scan, like sqlglot, gives the comment to the semicolon, which sqlglot's parser
    # then keeps as a statement of its own (exp.Semicolon); rp.sql reads one query.
    class Tx(rp.Source):
        a: rp.Int64 = rp.key()
        ts: rp.Timestamp = rp.event_time()

    for text in ("SELECT a FROM Tx; -- the end", "SELECT a FROM Tx; /* x */", "SELECT a FROM Tx ;\n-- x\n"):
        assert isinstance(rp.sql(text, sources=[Tx], dialect=dialect), rp.Plan)
    with pytest.raises(RelplanError, match="2 statements"):
        rp.sql("SELECT a FROM Tx; -- x\nSELECT a FROM Tx", sources=[Tx], dialect=dialect)
    with pytest.raises(RelplanError, match="no statement"):
        rp.sql("; -- x", sources=[Tx], dialect=dialect)
