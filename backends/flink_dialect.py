"""A Flink SQL dialect for sqlglot, and builders for the Flink-only statements.

sqlglot ships no Flink dialect. This one derives from sqlglot's **Hive** dialect.
Flink's Calcite parser shares Hive's surface where it matters here (backtick
identifiers, STRING, TIMESTAMP without time zone, NULLs first in ascending order),
and Hive is the smaller base: Spark, itself derived from Hive, adds Spark-only
behaviour Flink would have to undo (its tokenizer reads TIMESTAMP as a time-zone-aware
type; Spark functions and TRY_ rewrites). Where Flink differs from Hive:

* string literals escape a quote by doubling it, and nothing else: Flink reads a
  backslash literally, so Hive's backslash escapes would corrupt the text;
* TIMESTAMP keeps its precision (Flink's default, 6, is written out) and sqlglot's
  TIMESTAMPLTZ is ``TIMESTAMP_LTZ(p)``; CAST raises on bad input in Flink (not
  Hive's NULL), and TRY_CAST exists;
* Flink has no ``DIV``: IntDiv is ``/`` (BIGINT / BIGINT truncates in Flink), Mod is
  ``MOD(a, b)``, and Div is a plain ``/`` without "safe"/"typed" rewrites;
* GREATEST/LEAST are NULL when any argument is: ``ignore_nulls`` ones are rewritten,
  and Flink's own are read as not ignoring NULLs;
* DDL properties are ``WITH ('k' = 'v')``, not TBLPROPERTIES; an INSERT keeps its
  WITH after ``INSERT INTO t`` (Flink refuses ``WITH ... INSERT``).

The builders below emit what no sqlglot node spells the Flink way: interval literals
of any size, window table functions, DDL with a watermark, INSERT, SET and statement
sets. Importing this module registers the dialect as ``"flink"``:
``expr.sql(dialect="flink", identify=True)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.dialect import NormalizationStrategy
from sqlglot.dialects.hive import Hive
from sqlglot.generator import Generator
from sqlglot.generators.hive import HiveGenerator
from sqlglot.parser import Parser
from sqlglot.parsers.hive import HiveParser
from sqlglot.tokens import TokenType

__all__ = [
    "Flink",
    "FlinkGenerator",
    "create_table",
    "insert_into",
    "interval",
    "set_option",
    "statement_set",
    "window_tvf",
]

# Flink keeps TIMESTAMP's precision; its default is 6 (microseconds), spelled out so
# that a rendered type never depends on a default.
DEFAULT_TIMESTAMP_PRECISION = 6

_MS_PER = {"DAY": 86_400_000, "HOUR": 3_600_000, "MINUTE": 60_000, "SECOND": 1_000}
# Flink stores a day-time interval with a leading field of at most 3 digits (DAY(4)
# fails with "DAY_INTERVAL_TYPES precision is not supported"), so one literal spans
# less than 1000 days; Calcite's default leading precision is 2.
_MAX_LEADING = 999


class TableArgument(exp.Expression):
    """``TABLE t``: a table passed to a table function (Flink's window TVFs)."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True}


def _greatest_or_least(name: str):
    def render(self: FlinkGenerator, e: exp.Greatest | exp.Least) -> str:
        args = [self.sql(a) for a in (e.this, *e.expressions)]
        if e.args.get("ignore_nulls") and len(args) > 1:
            # Flink's GREATEST/LEAST are NULL as soon as one argument is. Standing in
            # for each argument, the first non-NULL of it and the others changes no
            # extreme, and is NULL only when all are.
            args = [self.func("COALESCE", a, *args[:i], *args[i + 1 :]) for i, a in enumerate(args)]
        return self.func(name, *args)

    return render


class FlinkGenerator(HiveGenerator):
    SUPPORTS_TEMPORAL_PRECISION = True
    WITH_PROPERTIES_PREFIX = "WITH"

    TYPE_MAPPING: ClassVar = {
        **HiveGenerator.TYPE_MAPPING,
        exp.DType.BLOB: "BYTES",
        exp.DType.VARBINARY: "BYTES",
        exp.DType.TIME: "TIME",  # Hive has no TIME and maps it to TIMESTAMP; Flink has one
        # Flink's only instant type (it has no TIMESTAMP WITH TIME ZONE).
        exp.DType.TIMESTAMPTZ: "TIMESTAMP_LTZ",
        exp.DType.TIMESTAMPLTZ: "TIMESTAMP_LTZ",
    }

    TRANSFORMS: ClassVar = {
        # Hive's SELECT preprocessing (QUALIFY, DISTINCT ON, UNNEST -> EXPLODE, ANY) copies
        # and walks every SELECT; none of it is Flink's, and it doubled the time to emit.
        **{k: v for k, v in HiveGenerator.TRANSFORMS.items() if k is not exp.Select},
        exp.Greatest: _greatest_or_least("GREATEST"),
        exp.Least: _greatest_or_least("LEAST"),
        exp.IntDiv: lambda self, e: self.binary(e, "/"),
        exp.Mod: lambda self, e: self.func("MOD", e.this, e.expression),
        # Flink: ARRAY[...] and CARDINALITY (it knows neither ARRAY(...) nor SIZE).
        exp.Array: lambda self, e: f"ARRAY[{self.expressions(e, flat=True)}]",
        exp.ArraySize: lambda self, e: self.func("CARDINALITY", e.this),
        # Flink has TRY_CAST; Hive's transform would drop the TRY_.
        exp.TryCast: lambda self, e: self.cast_sql(e, safe_prefix="TRY_"),
        exp.Property: lambda self, e: f"{self.property_name(e, string_key=True)} = {self.sql(e, 'value')}",
        TableArgument: lambda self, e: f"TABLE {self.sql(e, 'this')}",
    }

    # Hive hoists every WITH to the front of the statement; Flink refuses
    # "WITH ... INSERT INTO" (ParseException near INSERT) but takes a WITH nested in a
    # query and "INSERT INTO t WITH ... SELECT ...", so an INSERT keeps its CTEs inside.
    EXPRESSIONS_WITHOUT_NESTED_CTES: ClassVar = HiveGenerator.EXPRESSIONS_WITHOUT_NESTED_CTES - {exp.Insert}

    def insert_sql(self, expression: exp.Insert) -> str:
        with_, query = expression.args.get("with_"), expression.expression
        if with_ and isinstance(query, (exp.Select, exp.SetOperation)):
            expression = expression.copy()  # the AST may be the caller's (copy=False)
            with_, query = expression.args["with_"].pop(), expression.expression
            inner = query.args.get("with_")
            if inner:
                inner.set("expressions", [*with_.expressions, *inner.expressions])
            else:
                query.set("with_", with_)
        return super().insert_sql(expression)

    def div_sql(self, expression: exp.Div) -> str:
        # The base rewrites "safe" and "typed" divisions in place; the lowering states
        # what it means with explicit casts and NULLIFs, so "/" is all Flink should see.
        return self.binary(expression, "/")

    def datatype_sql(self, expression: exp.DataType) -> str:
        if expression.this in _TIMESTAMP_TYPES and not expression.expressions:
            # A copy: the generator may run on the caller's AST (copy=False).
            expression = expression.copy()
            expression.set(
                "expressions", [exp.DataTypeParam(this=exp.Literal.number(DEFAULT_TIMESTAMP_PRECISION))]
            )
        if expression.this in self.PARAMETERIZABLE_TEXT_TYPES and not expression.expressions:
            return "STRING"
        # Not Hive's: it maps FLOAT(n) sizes (no such type here) by re-parsing the name
        # "float" for every type it renders, a third of the time of a wide table's DDL.
        return Generator.datatype_sql(self, expression)


_TIMESTAMP_TYPES = {
    exp.DType.TIMESTAMP,
    exp.DType.TIMESTAMPNTZ,
    exp.DType.DATETIME,
    exp.DType.TIMESTAMPTZ,
    exp.DType.TIMESTAMPLTZ,
}


class Flink(Hive):
    SAFE_DIVISION = False  # 1 / 0 raises in Flink
    TYPED_DIVISION = True  # BIGINT / BIGINT is a truncated BIGINT
    # Flink identifiers are case-sensitive (Calcite's Lex.JAVA).
    NORMALIZATION_STRATEGY = NormalizationStrategy.CASE_SENSITIVE
    UNESCAPED_SEQUENCES: ClassVar[dict[str, str]] = {}
    # Flink's GREATEST/LEAST are NULL as soon as one argument is. sqlglot's default reads
    # them as ignoring NULLs, which the generator then rewrites with COALESCEs: Flink SQL
    # read back would change meaning (and grow) on each round.
    LEAST_GREATEST_IGNORES_NULLS = False

    class Tokenizer(Hive.Tokenizer):
        QUOTES: ClassVar = ["'"]  # "..." is no string in Flink
        STRING_ESCAPES: ClassVar = ["'"]  # a backslash is an ordinary character
        NUMERIC_ESCAPES: ClassVar = {}
        NUMERIC_LITERALS: ClassVar = {}  # Hive's 10L / 1.5BD suffixes
        KEYWORDS: ClassVar = {
            **Hive.Tokenizer.KEYWORDS,
            "BYTES": TokenType.VARBINARY,
        }

    class Parser(HiveParser):
        STRICT_CAST = True  # Flink's CAST raises where Hive's yields NULL

        # Window TVFs take "TABLE t" arguments, which no sqlglot parser reads.
        FUNCTION_PARSERS: ClassVar = {
            **HiveParser.FUNCTION_PARSERS,
            **{
                name: lambda self, name=name: self._parse_tvf(name)
                for name in ("TUMBLE", "HOP", "CUMULATE", "SESSION")
            },
        }

        def _parse_types(self, *args: Any, **kwargs: Any) -> exp.Expr | None:
            # Hive's parser reads CAST(x AS VARCHAR(n)) as a cast to STRING, as Spark does;
            # Flink cuts the text to n characters, so its reading keeps the type written.
            return Parser._parse_types(self, *args, **kwargs)

        def _parse_tvf(self, name: str) -> exp.Expression:
            def arg() -> exp.Expression | None:
                if self._match(TokenType.TABLE):
                    return TableArgument(this=self._parse_table_parts())
                return self._parse_lambda()

            return exp.Anonymous(this=name, expressions=self._parse_csv(arg))

    Generator = FlinkGenerator


def _interval_literal(value: str, unit: str) -> exp.Interval:
    return exp.Interval(this=exp.Literal.string(value), unit=exp.Var(this=unit))


def interval(us: int) -> exp.Expression:
    """An interval of ``us`` microseconds (a whole number of milliseconds, >= 0).

    Flink keeps day-time intervals in milliseconds and allows a leading field of
    at most three digits, so the form depends on the size:

    * a whole number (< 1000) of days, hours, minutes or seconds:
      ``INTERVAL '1' HOUR``, ``INTERVAL '400' DAY(3)`` (the ``(3)`` from 100 on);
    * under 1000 s with a fraction: ``INTERVAL '1.500' SECOND``, ``INTERVAL '123.456' SECOND(3)``;
    * under 1000 days: ``INTERVAL '1 02:03:04.005' DAY(3) TO SECOND(3)``;
    * from 1000 days on no literal exists: ``(INTERVAL '1' DAY * 1500)``, plus a
      literal for a remainder under a day. That product is fine in expressions,
      watermarks and OVER frames, but window TVFs refuse it (see window_tvf).
    """
    if us < 0 or us % 1000:
        raise ValueError(f"Flink intervals are whole milliseconds >= 0, not {us} us")
    ms = us // 1000
    if ms == 0:
        return _interval_literal("0", "SECOND")
    for unit, size in _MS_PER.items():
        n, rest = divmod(ms, size)
        if not rest and n <= _MAX_LEADING:
            # Calcite's default leading precision is 2: INTERVAL '100' DAY is refused.
            return _interval_literal(str(n), unit if n < 100 else f"{unit}(3)")
    seconds, frac = divmod(ms, 1000)
    if seconds <= _MAX_LEADING:
        return _interval_literal(f"{seconds}.{frac:03d}", "SECOND" if seconds < 100 else "SECOND(3)")
    days, rest = divmod(ms, _MS_PER["DAY"])
    if days <= _MAX_LEADING:
        h, rest = divmod(rest, _MS_PER["HOUR"])
        m, rest = divmod(rest, _MS_PER["MINUTE"])
        s, frac = divmod(rest, 1000)
        return _interval_literal(f"{days} {h:02d}:{m:02d}:{s:02d}.{frac:03d}", "DAY(3) TO SECOND(3)")
    product: exp.Expression = exp.Mul(this=_interval_literal("1", "DAY"), expression=exp.Literal.number(days))
    if rest:
        product = exp.Add(this=product, expression=interval(rest * 1000))
    # Parenthesised, so that the helper's result can stand anywhere as one operand.
    return exp.Paren(this=product)


_TVF_ARGS = {"TUMBLE": (), "HOP": ("slide_us",), "CUMULATE": ("step_us",)}


def window_tvf(
    kind: str,
    table: str,
    time_col: str,
    size_us: int,
    slide_us: int | None = None,
    step_us: int | None = None,
) -> exp.Expression:
    """A windowing table function, usable as a FROM item:
    ``TABLE(TUMBLE(TABLE `t`, DESCRIPTOR(`ts`), <size>))``, ``HOP(..., <slide>, <size>)``
    (``slide_us`` required), ``CUMULATE(..., <step>, <size>)`` (``step_us`` required).

    Flink takes only interval literals here ("Only constant window descriptors are
    supported"), so every duration must be under 1000 days (ValueError otherwise).
    """
    kind = kind.upper()
    if kind not in _TVF_ARGS:
        raise ValueError(f"unknown window TVF {kind!r}; expected one of {sorted(_TVF_ARGS)}")
    given = {"slide_us": slide_us, "step_us": step_us}
    for name, value in given.items():
        if (value is not None) != (name in _TVF_ARGS[kind]):
            raise ValueError(f"{kind} {'needs' if value is None else 'takes no'} {name}")
    durations = [interval(us) for us in (*(given[n] for n in _TVF_ARGS[kind]), size_us)]
    if not all(isinstance(d, exp.Interval) for d in durations):
        raise ValueError(f"{kind}: Flink window TVFs take durations under 1000 days only")
    call = exp.Anonymous(
        this=kind,
        expressions=[
            TableArgument(this=exp.to_table(exp.to_identifier(table))),
            exp.Anonymous(this="DESCRIPTOR", expressions=[exp.column(time_col)]),
            *durations,
        ],
    )
    return exp.Anonymous(this="TABLE", expressions=[call])


def create_table(
    name: str,
    columns: list[tuple[str, exp.DataType]],
    *,
    watermark: tuple[str, int] | None = None,
    options: dict[str, str],
    computed: dict[str, exp.Expression] | None = None,
) -> exp.Expression:
    """``CREATE TABLE `name` (`a` BIGINT, ..., WATERMARK FOR `ts` AS `ts` - <delay>)
    WITH ('connector' = '...', ...)``.

    ``watermark``: (event-time column, delay in microseconds, whole milliseconds). A
    zero delay is the bare column (``WATERMARK FOR `ts` AS `ts```). Flink refuses a
    watermark on a TIMESTAMP(6) column: declare it TIMESTAMP(3) (or TIMESTAMP_LTZ(3)).
    ``computed``: computed columns after the physical ones, by name (```v` AS <expr>``);
    the watermark may be on one.
    """
    # Each distinct type is rendered once: rendering types (sqlglot's Hive generator
    # re-parses type names) was most of the time of a thousand-column table's DDL.
    rendered: dict[exp.DataType, exp.Var] = {}
    for dtype in {dtype for _, dtype in columns}:
        rendered[dtype] = exp.Var(this=dtype.sql(dialect="flink"))
    items: list[exp.Expression] = [
        exp.ColumnDef(this=exp.to_identifier(col), kind=rendered[dtype].copy()) for col, dtype in columns
    ]
    for col, value in (computed or {}).items():
        constraint = exp.ColumnConstraint(kind=exp.ComputedColumnConstraint(this=value))
        items.append(exp.ColumnDef(this=exp.to_identifier(col), constraints=[constraint]))
    if watermark is not None:
        col, delay_us = watermark
        strategy: exp.Expression = exp.column(col)
        if delay_us:
            strategy = exp.Sub(this=exp.column(col), expression=interval(delay_us))
        items.append(exp.WatermarkColumnConstraint(this=exp.column(col), expression=strategy))
    props = [
        exp.Property(this=exp.Literal.string(k), value=exp.Literal.string(v)) for k, v in options.items()
    ]
    return exp.Create(
        this=exp.Schema(this=exp.to_table(exp.to_identifier(name)), expressions=items),
        kind="TABLE",
        properties=exp.Properties(expressions=props),
    )


def _string(value: str) -> str:
    return exp.Literal.string(value).sql(dialect=Flink)


def set_option(key: str, value: str) -> str:
    """``SET 'key' = 'value'``: a Flink SQL client statement (a TableEnvironment's
    execute_sql refuses SET; use ``get_config().set(key, value)`` there)."""
    return f"SET {_string(key)} = {_string(value)}"


def insert_into(table: str, query: exp.Expression) -> exp.Expression:
    """``INSERT INTO `table` <query>``; Flink accepts a query starting with WITH there."""
    return exp.Insert(this=exp.to_table(exp.to_identifier(table)), expression=query)


def statement_set(inserts: list[str]) -> str:
    """``EXECUTE STATEMENT SET BEGIN <insert>; ... END``: the INSERTs run as one job
    (sharing their sources). ``inserts`` are rendered statements, with or without ';'."""
    if not inserts:
        raise ValueError("a statement set needs at least one INSERT")
    body = "".join(f"{i.rstrip().rstrip(';')};\n" for i in inserts)
    return f"EXECUTE STATEMENT SET\nBEGIN\n{body}END"
