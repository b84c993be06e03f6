"""Scalar SQL expressions to IR expressions, in the dialect's meaning.

One converter, ``convert``, dispatches on the sqlglot node and calls back for each
sub-expression, so that the query builder decides what a column, an aggregate or a
window function means where it stands (before or after GROUP BY) without a second
copy of the operator table.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from difflib import get_close_matches

from sqlglot import exp

from relplan.compiler.sql import semantics
from relplan.ir import types as T
from relplan.ir.errors import RelplanError, SchemaError, TypeMismatchError, UnsupportedError
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Expr, InList, Literal, Unary
from relplan.ir.windows import US

Child = Callable[[exp.Expression], Expr]

_COMPARE = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_ARITH = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}

# Types a CAST may name, per relplan type. relplan has one integer type (64 bits) and one
# floating type (double): a cast to a narrower type would overflow or round where the
# IR does not, so it is refused rather than approximated.
_TYPES = {
    exp.DataType.Type.BIGINT: T.Int64,
    exp.DataType.Type.DOUBLE: T.Float64,
    exp.DataType.Type.VARCHAR: T.String,
    exp.DataType.Type.TEXT: T.String,
    exp.DataType.Type.BOOLEAN: T.Bool,
    # relplan runs every engine in UTC: a timestamp with or without a zone is one instant.
    exp.DataType.Type.TIMESTAMP: T.Timestamp,
    exp.DataType.Type.TIMESTAMPNTZ: T.Timestamp,
    exp.DataType.Type.TIMESTAMPLTZ: T.Timestamp,
    exp.DataType.Type.TIMESTAMPTZ: T.Timestamp,
    exp.DataType.Type.DATE: T.Date,
}

#: Functions whose value changes from one run to the next: a feature must not read them.
NON_DETERMINISTIC = {
    "RAND", "RANDOM", "UUID", "GEN_RANDOM_UUID", "NOW", "CURRENT_TIMESTAMP", "CURRENT_DATE",
    "CURRENT_TIME", "LOCALTIMESTAMP", "LOCALTIME", "UNIX_TIMESTAMP", "PROCTIME", "CURRENT_ROW_TIMESTAMP",
    "SETSEED", "SHUFFLE", "MONOTONICALLY_INCREASING_ID", "SPARK_PARTITION_ID", "INPUT_FILE_NAME",
}
_NON_DETERMINISTIC_NODES = (exp.Rand, exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.Uuid)

#: The functions the front end reads, named in the error for one it does not.
KNOWN_FUNCTIONS = ("COALESCE", "IFNULL", "NVL", "CAST", "CASE", "COUNT", "SUM", "AVG", "MIN", "MAX",
                   "VARIANCE", "VAR_SAMP", "STDDEV", "STDDEV_SAMP")


class Located(RelplanError):
    """An error raised while converting, tagged with the node it is about (the front end
    re-raises it as its own class, located in the text)."""

    def __init__(self, error: RelplanError, node: exp.Expression) -> None:
        super().__init__(error.message)
        self.error = error
        self.node = node


def fail(kind: type[RelplanError], message: str, node: exp.Expression) -> Located:
    return Located(kind(message), node)


#: The most operations an expression may have as the engines read it. The IR shares a
#: sub-expression used twice, but its SQL (and every walk over it) repeats it, and SQL's
#: %, integer division, <=>, IS [NOT] DISTINCT FROM, IS TRUE, BETWEEN and CASE x WHEN
#: are written in the IR with their operands repeated: nested, they grow exponentially
#: (twenty nested % would be some 3**20 operations, a query that never ends).
MAX_EXPANDED = 20_000


def convert(node: exp.Expression, child: Child, dialect: str) -> Expr:
    """The IR expression of a scalar SQL node; ``child`` converts its sub-expressions."""
    try:
        e = _convert(node, child, dialect)
    except Located:
        raise
    except RelplanError as e:  # an IR constructor refused (types): located at this node
        raise Located(e, node) from None
    if not e.children():
        return e
    expanded = _Sizes.of(node).expanded(e)
    if expanded > MAX_EXPANDED and expanded > 4 * expanded_size(e)[1]:
        raise fail(
            UnsupportedError,
            f"{_head(_sql(node, dialect))} repeats its operands until it is {expanded:,} operations in SQL "
            f"(relplan reads at most {MAX_EXPANDED:,}): %, integer division, <=>, IS DISTINCT FROM, IS TRUE, "
            "BETWEEN and CASE x WHEN repeat theirs; compute the inner part as a column of a CTE or subquery",
            node,
        )
    return e


class _Sizes:
    """The expanded sizes of the expressions converted for one statement, kept on its
    root (a copy of the statement starts afresh)."""

    KEY = "relplan_expanded_sizes"

    def __init__(self) -> None:
        self.sizes: dict[int, tuple[Expr, int]] = {}  # the Expr keeps its id unique

    @classmethod
    def of(cls, node: exp.Expression) -> _Sizes:
        meta = node.root().meta
        found = meta.get(cls.KEY)
        if not isinstance(found, cls):
            found = meta[cls.KEY] = cls()
        return found

    def __deepcopy__(self, memo: dict) -> _Sizes:
        return _Sizes()

    def __copy__(self) -> _Sizes:
        return _Sizes()

    def expanded(self, e: Expr) -> int:
        """``e``'s operations written out as a tree, from its parts' known sizes."""
        sizes = self.sizes
        stack: list[tuple[Expr, bool]] = [(e, False)]
        while stack:
            x, done = stack.pop()
            if id(x) in sizes:
                continue
            kids = x.children()
            if done:
                sizes[id(x)] = (x, 1 + sum(sizes[id(k)][1] for k in kids))
                continue
            stack.append((x, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
        return sizes[id(e)][1]


def expanded_size(e: Expr) -> tuple[int, int]:
    """(operations of ``e`` written out as a tree, distinct sub-expressions), in time
    linear in the distinct ones (no recursion: a deep expression is fine)."""
    sizes: dict[int, int] = {}
    keep: list[Expr] = []  # ids stay unique while their objects live
    stack: list[tuple[Expr, bool]] = [(e, False)]
    while stack:
        x, done = stack.pop()
        if id(x) in sizes:
            continue
        kids = x.children()
        if done:
            sizes[id(x)] = 1 + sum(sizes[id(k)] for k in kids)
            keep.append(x)
            continue
        stack.append((x, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)
    return sizes[id(e)], len(sizes)


def _convert(node: exp.Expression, child: Child, dialect: str) -> Expr:
    if isinstance(node, exp.Paren):
        return child(node.this)
    if isinstance(node, exp.Literal):
        return _literal(node)
    if isinstance(node, exp.Boolean):
        return Literal(bool(node.this))
    if isinstance(node, exp.Null):
        return Literal(None)
    op = _COMPARE.get(type(node))
    if op is not None:
        return Binary(op, child(node.this), child(node.expression))
    if isinstance(node, exp.NullSafeEQ) or isinstance(node, exp.NullSafeNEQ):
        a, b = child(node.this), child(node.expression)
        both_null = Binary("AND", Unary("IS NULL", a), Unary("IS NULL", b))
        one_null = Binary("OR", Unary("IS NULL", a), Unary("IS NULL", b))
        same = Case(((both_null, Literal(True)), (one_null, Literal(False))), Binary("=", a, b))
        return same if isinstance(node, exp.NullSafeEQ) else Unary("NOT", same)
    op = _ARITH.get(type(node))
    if op is not None:
        a, b = child(node.this), child(node.expression)
        _no_decimal_arithmetic(node, a, b, dialect)
        _typed_in_flink(node, (a, b), dialect)
        return Binary(op, a, b)
    if isinstance(node, exp.Div):
        a, b = child(node.this), child(node.expression)
        _no_decimal_arithmetic(node, a, b, dialect)
        _typed_in_flink(node, (a, b), dialect)
        return semantics.divide(a, b, dialect)
    if isinstance(node, exp.IntDiv):
        a, b = child(node.this), child(node.expression)
        _typed_in_flink(node, (a, b), dialect)
        _need_int(a, b, "integer division", node)
        return semantics.truncated_div(a, b)
    if isinstance(node, exp.Mod):
        a, b = child(node.this), child(node.expression)
        _typed_in_flink(node, (a, b), dialect)
        _need_int(a, b, "%", node)
        return semantics.truncated_mod(a, b)
    if isinstance(node, exp.Neg):
        # A negative number is a literal (in IN lists, and -9223372036854775808 fits BIGINT).
        inner = node.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if isinstance(inner, exp.Literal) and not inner.is_string and str(inner.this).lstrip("0") == str(2**63):
            return Literal(-(2**63))
        value = child(node.this)
        if isinstance(value, Literal) and value.dtype in (T.Int64, T.Float64) and value.value is not None:
            if value.value == -(2**63) and value.dtype == T.Int64:
                raise fail(TypeMismatchError, f"{_head(_sql(node, dialect))} does not fit BIGINT", node)
            return Literal(-value.value, value.dtype)
        _typed_in_flink(node, (value,), dialect)
        return Unary("NEG", value)
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
            return Unary("IS NOT NULL", child(inner.this))
        value = child(inner)
        _typed_in_flink(node, (value,), dialect)
        return Unary("NOT", value)
    if isinstance(node, (exp.And, exp.Or)):
        a, b = child(node.this), child(node.expression)
        _typed_in_flink(node, (a, b), dialect)
        return Binary("AND" if isinstance(node, exp.And) else "OR", a, b)
    if isinstance(node, exp.Is):
        if isinstance(node.expression, exp.Null):
            return Unary("IS NULL", child(node.this))
        if isinstance(node.expression, exp.Boolean):
            v = child(node.this)
            return Binary("AND", Unary("IS NOT NULL", v), Binary("=", v, Literal(bool(node.expression.this))))
        raise fail(UnsupportedError, f"IS {_head(_sql(node.expression, dialect))} is not supported; use IS NULL or =", node)
    if isinstance(node, exp.Between):
        v, low, high = child(node.this), child(node.args["low"]), child(node.args["high"])
        between = Binary("AND", Binary(">=", v, low), Binary("<=", v, high))
        if node.args.get("symmetric"):  # BETWEEN SYMMETRIC: either bound may be the lower
            return Binary("OR", between, Binary("AND", Binary(">=", v, high), Binary("<=", v, low)))
        return between
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise fail(UnsupportedError, "IN (subquery) is not supported: relplan reads IN with a list of literals", node)
        operand = child(node.this)
        if not node.expressions:
            raise fail(SchemaError, f"IN () of {_head(_sql(node.this, dialect))} has no values: name at least one", node)
        values = []
        for v in node.expressions:
            lit = child(v)
            if not isinstance(lit, Literal):
                raise fail(UnsupportedError, f"IN lists take literals; {_head(_sql(v, dialect))} is not one (use OR of comparisons)", v)
            values.append(lit)
        try:
            return InList(operand, tuple(values))
        except RelplanError as e:  # the IR speaks of isin(); the user wrote IN
            raise fail(type(e), e.message.replace("isin()", "IN"), node) from None
    if isinstance(node, exp.Case):
        operand = child(node.this) if node.this is not None else None
        whens = []
        for branch in node.args.get("ifs") or []:
            cond = child(branch.this)
            if operand is not None:
                cond = Binary("=", operand, cond)
            whens.append((cond, child(branch.args["true"])))
        default = node.args.get("default")
        return Case(tuple(whens), child(default) if default is not None else Literal(None))
    if isinstance(node, exp.If):
        other = node.args.get("false")
        return Case(((child(node.this), child(node.args["true"])),), child(other) if other is not None else Literal(None))
    if isinstance(node, exp.Coalesce):
        args = [node.this, *(node.expressions or [])]
        return Coalesce(tuple(child(a) for a in args))
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return _cast(node, child, dialect)
    if isinstance(node, _NON_DETERMINISTIC_NODES):
        raise _non_deterministic(written(node, node.sql(dialect=dialect)).upper(), node)
    if isinstance(node, exp.Func) and written(node).upper() in NON_DETERMINISTIC:
        raise _non_deterministic(written(node).upper(), node)
    if isinstance(node, (exp.Subquery, exp.Select, exp.Exists)):
        raise fail(UnsupportedError, "a subquery in an expression is not supported: join it in FROM instead", node)
    if isinstance(node, exp.Interval):
        raise fail(UnsupportedError, f"an interval ({_head(_sql(node, dialect))}) is read only in window frames and time windows", node)
    if isinstance(node, exp.Star):
        raise fail(SchemaError, "* stands only in SELECT * or COUNT(*)", node)
    if isinstance(node, exp.Func):
        name = written(node, node.sql_name() if not isinstance(node, exp.Anonymous) else str(node.this)).upper()
        hint = get_close_matches(name, KNOWN_FUNCTIONS, n=1)
        more = f" (did you mean {hint[0]}?)" if hint else ""
        raise fail(
            UnsupportedError,
            f"function {name}() is not supported by relplan's SQL front end{more}; it reads "
            f"{', '.join(KNOWN_FUNCTIONS)} and the operators (docs/sql.md)",
            node,
        )
    raise fail(UnsupportedError, f"{type(node).__name__.upper()} ({_head(_sql(node, dialect))}) is not supported", node)


def _no_decimal_arithmetic(node: exp.Expression, a: Expr, b: Expr, dialect: str) -> None:
    """A number written with a point and no exponent (1.1) is a DECIMAL in DuckDB, Spark
    and Flink: with a BIGINT or another DECIMAL, +, -, * and / compute exactly in decimal
    there (0.1 + 0.2 = 0.3 is true), where relplan's IR computes in DOUBLE. With a DOUBLE
    the engines compute in DOUBLE too: the same. Anything else is refused, not approximated."""
    for side, other, other_node in ((node.this, b, node.expression), (node.expression, a, node.this)):
        if _is_decimal(side) and (other.dtype not in (T.Float64, T.Null) or _is_decimal(other_node)):
            number = _head(_sql(side, dialect))
            raise fail(
                UnsupportedError,
                f"{number} is a DECIMAL in {dialect}, so {_head(_sql(node, dialect))} is exact decimal arithmetic there, "
                f"where relplan computes in DOUBLE: write the number as a DOUBLE (CAST({number} AS DOUBLE) "
                f"or with an exponent, {number}e0) or cast the other operand to DOUBLE",
                node,
            )


def _is_decimal(node: exp.Expression) -> bool:
    while isinstance(node, (exp.Paren, exp.Neg)):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string and re.fullmatch(r"[0-9]*\.[0-9]*", str(node.this)) is not None


def _need_int(a: Expr, b: Expr, what: str, node: exp.Expression) -> None:
    for side in (a, b):
        if side.dtype not in (T.Int64, T.Null):
            raise fail(TypeMismatchError, f"{what} takes BIGINT operands, but {side.sql()} is {side.dtype}", node)


def _non_deterministic(name: str, node: exp.Expression) -> Located:
    return fail(
        UnsupportedError,
        f"{name} is non-deterministic: a feature must give the same value in training and serving, "
        "so relplan refuses it; pass the value in as a column",
        node,
    )


def _literal(node: exp.Literal) -> Literal:
    text = str(node.this)
    if node.is_string:
        return Literal(text)
    if re.fullmatch(r"[0-9]+", text):
        # Checked on the digits first: a long one is refused before Python reads it.
        if len(text.lstrip("0")) > 19 or int(text) > 2**63 - 1:
            raise fail(TypeMismatchError, f"integer literal {_number(text)} does not fit BIGINT", node)
        return Literal(int(text))
    if not re.fullmatch(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", text):
        raise fail(TypeMismatchError, f"cannot read the number {_number(text)}", node)
    value = float(text)
    if not math.isfinite(value):
        raise fail(TypeMismatchError, f"number literal {_number(text)} does not fit DOUBLE", node)
    return Literal(value)


def _number(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text):,} characters)"


#: Flink's types of at most n characters.
_FLINK_CUT = (exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR, exp.DataType.Type.NVARCHAR, exp.DataType.Type.NCHAR)


def _whole_string(dtype: exp.DataType) -> bool:
    """Flink's STRING spelled out: VARCHAR(2147483647)."""
    n = dtype.expressions
    return dtype.this == exp.DataType.Type.VARCHAR and len(n) == 1 and n[0].sql() == "2147483647"


def sql_type(dtype: exp.DataType, node: exp.Expression, dialect: str | None = None) -> T.DataType:
    t = _TYPES.get(dtype.this)
    if dialect == "flink" and dtype.this in _FLINK_CUT and not _whole_string(dtype):
        # Flink's CHAR(n) and VARCHAR(n) cut (CHAR also pads) the text to n characters, and
        # without a length n is 1; DuckDB and Spark ignore n. relplan's Flink dialect keeps
        # the length (sqlglot's Hive reading drops it).
        length = dtype.expressions[0].sql() if dtype.expressions else "1"
        raise fail(
            UnsupportedError,
            f"CAST to {_head(dtype.sql())} cuts the text to {length} character{'' if length == '1' else 's'} in Flink "
            "(VARCHAR and CHAR without a length hold one); cast to STRING",
            node,
        )
    if t is None:
        raise fail(
            UnsupportedError,
            # the type as SQL: a parser records where its parameters are, not its name
            f"CAST to {_head(dtype.sql(dialect=dialect))} is not supported: relplan's types are BIGINT, DOUBLE, VARCHAR/STRING, "
            "BOOLEAN, TIMESTAMP and DATE (a narrower or decimal type would overflow or round differently)",
            node,
        )
    return t


def _typed_in_flink(node: exp.Expression, operands: tuple[Expr, ...], dialect: str) -> None:
    """Flink refuses a NULL of no type as an operand of arithmetic, AND, OR, NOT and
    negation ("Illegal use of 'NULL'"), where DuckDB and Spark take it: so does rp.sql in
    its dialect, rather than give the query a meaning Flink does not."""
    if dialect == "flink" and any(o.dtype == T.Null for o in operands):
        raise fail(
            UnsupportedError,
            f"Flink refuses a NULL of no type in {_head(node.sql(dialect=dialect))}; give it one: CAST(NULL AS BIGINT)",
            node,
        )


def _cast(node: exp.Cast, child: Child, dialect: str) -> Expr:
    target = sql_type(node.to, node, dialect)
    inner = node.this
    if isinstance(inner, exp.Literal) and inner.is_string and target in (T.Timestamp, T.Date):
        text = str(inner.this)
        if target == T.Timestamp:  # an offset means something else per dialect
            text = semantics.timestamp_text(text, node.to.this == exp.DataType.Type.TIMESTAMPTZ, dialect)
        return time_literal(text, target, node)
    value = child(inner)
    if dialect == "flink" and target == T.Date and value.dtype == T.Timestamp:
        # Flink truncates the days since 1970 toward zero (1969-12-31 23:59 is 1970-01-01),
        # and the IR has no arithmetic on days to say so; relplan's own form reads back.
        raise fail(
            UnsupportedError,
            "Flink's CAST(<timestamp> AS DATE) is a day late before 1970 (it truncates days toward zero), which "
            "relplan does not model; for the day holding ts write CASE WHEN CAST(CAST(ts AS DATE) AS TIMESTAMP(6)) "
            "> ts THEN CAST(ts AS DATE) - INTERVAL '1' DAY ELSE CAST(ts AS DATE) END, as relplan writes it",
            node,
        )
    # Spark's CAST reads as a TryCast (NULL on bad input, without ANSI mode); it is a plain
    # cast where no input can be bad (not from a string). TRY_CAST itself is marked safe.
    if isinstance(node, exp.TryCast) and (node.args.get("safe") or (value.dtype == T.String and target != T.String)):
        raise fail(UnsupportedError, "TRY_CAST is not supported: its NULL on bad input differs per engine", node)
    if value.dtype == T.Float64 and target == T.Int64 and dialect == "duckdb":
        raise fail(
            UnsupportedError,
            "DuckDB rounds a DOUBLE cast to BIGINT (2.5 -> 3) where relplan's IR truncates; "
            "relplan refuses it rather than change its values",
            node,
        )
    return Cast(value, target)


def time_literal(text: str, target: T.DataType, node: exp.Expression) -> Literal:
    """A TIMESTAMP or DATE literal; a timestamp without a zone is UTC."""
    try:
        if target == T.Date:
            return Literal(dt.date.fromisoformat(text.strip()))
        value = dt.datetime.fromisoformat(text.strip().replace(" UTC", "+00:00"))
    except ValueError:
        raise fail(TypeMismatchError, f"cannot read {_head(text)!r} as a {target}", node) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return Literal(value)


_UNITS = {
    "MICROSECOND": US["us"], "MICROSECONDS": US["us"], "MILLISECOND": US["ms"], "MILLISECONDS": US["ms"],
    "SECOND": US["s"], "SECONDS": US["s"], "MINUTE": US["m"], "MINUTES": US["m"],
    "HOUR": US["h"], "HOURS": US["h"], "DAY": US["d"], "DAYS": US["d"], "WEEK": 7 * US["d"], "WEEKS": 7 * US["d"],
}


def interval_us(node: exp.Expression) -> int:
    """An INTERVAL literal's length in microseconds: ``INTERVAL '1' DAY``, ``INTERVAL 1 DAY``,
    ``INTERVAL '1 day'``, ``INTERVAL '90' MINUTE``; months and years (of varying length)
    are refused."""
    if isinstance(node, exp.Paren):
        return interval_us(node.this)
    if not isinstance(node, exp.Interval):
        raise fail(UnsupportedError, f"expected an INTERVAL here, got {_head(node.sql())}", node)
    value = node.this
    unit = node.args.get("unit")
    text = str(value.this) if isinstance(value, exp.Literal) else (value.sql() if value is not None else "")
    unit_name = unit.sql().upper() if unit is not None else ""
    if not unit_name:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*", text)
        if not m:
            raise fail(UnsupportedError, f"cannot read the interval {node.sql()!r}", node)
        text, unit_name = m.group(1), m.group(2).upper()
    if unit_name.endswith("S") and unit_name not in _UNITS:
        unit_name = unit_name[:-1]
    scale = _UNITS.get(unit_name)
    if scale is None:
        raise fail(
            UnsupportedError,
            f"interval unit {unit_name} is not supported (months and years vary in length); "
            "use DAY, HOUR, MINUTE, SECOND, MILLISECOND or MICROSECOND",
            node,
        )
    try:
        amount = float(text) if "." in text else int(text)
    except ValueError:
        raise fail(UnsupportedError, f"cannot read the interval {node.sql()!r}", node) from None
    us = amount * scale
    if us != int(us) or us <= 0:
        raise fail(UnsupportedError, f"interval {_head(node.sql())} must be a positive whole number of microseconds", node)
    if us > MAX_INTERVAL_US:
        raise fail(UnsupportedError, f"interval {_head(node.sql())} is longer than 100,000 days, past what engines hold in microseconds", node)
    return int(us)


#: The longest interval relplan reads: some 274 years; microseconds of event time stay
#: far inside a BIGINT when one is added to or taken from a timestamp.
MAX_INTERVAL_US = 100_000 * US["d"]


def _head(sql: str) -> str:
    sql = "".join(c if c.isprintable() else repr(c)[1:-1] for c in sql)
    return sql if len(sql) <= 60 else sql[:57] + "..."


def _sql(node: exp.Expression, dialect: str | None) -> str:
    """``node`` as the user wrote it (its span of the text the reader kept), or as SQL of
    the dialect, for a message."""
    text = (node.root()._meta or {}).get(SQL_TEXT)
    if isinstance(text, str):
        spans = [(int(n._meta["start"]), int(n._meta["end"])) for n in node.walk() if n._meta and "start" in n._meta]
        if spans:
            lo, hi = min(s for s, _ in spans), max(e for _, e in spans) + 1
            while text.count("(", lo, hi) > text.count(")", lo, hi):  # the call's closing parenthesis
                nxt = len(text) - len(text[hi:].lstrip())
                if nxt >= len(text) or text[nxt] != ")":
                    break
                hi = nxt + 1
            while text.count(")", lo, hi) > text.count("(", lo, hi):  # a parenthesized operand's opening one
                before = len(text[:lo].rstrip()) - 1
                if before < 0 or text[before] != "(":
                    break
                lo = before
            return text[lo:hi]
    return node.sql(dialect=dialect)


#: The key under which the reader keeps the SQL text on the parsed statement's meta.
SQL_TEXT = "relplan_sql_text"


def written(node: exp.Expression, default: str = "") -> str:
    """The name of a function call as the user wrote it (sqlglot may have renamed it:
    Spark's RANDOM() is its RAND, UNIX_TIMESTAMP() its STR_TO_UNIX): the text of the
    name's token, kept by the reader on the statement."""
    meta = node._meta or {}
    text = (node.root()._meta or {}).get(SQL_TEXT)
    if isinstance(text, str) and "start" in meta and "end" in meta:
        end = int(meta["end"]) + 1
        name = text[int(meta["start"]) : end]
        # the token is the call's name if a parenthesis follows it (or the call has no
        # parentheses: CURRENT_TIMESTAMP); else it is an argument (EXTRACT(HOUR FROM ts))
        called = text[end:].lstrip().startswith("(") or name.upper() == node.sql_name().upper()
        if called and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return name
    if default:
        return default
    return str(node.this) if isinstance(node, exp.Anonymous) else node.sql_name()
