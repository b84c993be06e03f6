"""Reading SQL text: one query of a known dialect, within limits, and where each part is.

Everything here turns sqlglot's view of the text into relplan's: a parse error, a
second statement, DDL or DML, an unknown dialect or a query too large or too deeply
nested is a ``SqlError`` naming the line and column, never a sqlglot exception or a
RecursionError.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError

import relplan.backends.flink_dialect  # noqa: F401  (registers the "flink" dialect with sqlglot)
from relplan.ir.errors import RelplanError, SqlError

#: The dialects whose meaning relplan reads (shared/ENGINE-FACTS.md and docs/sql.md).
DIALECTS = ("duckdb", "spark", "flink")

#: Limits that keep a hostile query from hanging or exhausting the stack: characters of
#: text, parentheses open at once, and depth of the parsed tree.
MAX_CHARS = 1_000_000
MAX_PARENS = 64
MAX_DEPTH = 200


def check_dialect(dialect: Any) -> str:
    if not isinstance(dialect, str):
        raise SqlError(f"dialect= takes a name ({', '.join(map(repr, DIALECTS))}), got {dialect!r}")
    name = dialect.lower()
    if name in DIALECTS:
        return name
    try:
        sqlglot.Dialect.get_or_raise(name)
        known = "sqlglot knows it, but relplan does not model its semantics"
    except (ValueError, SqlglotError):
        known = "sqlglot does not know it"
    raise SqlError(f"unknown dialect {dialect!r} ({known}); relplan reads {', '.join(DIALECTS)}")


def locate(text: str, node: exp.Expression | None) -> str | None:
    """``line L, column C`` of ``node`` in ``text`` with the line shown, or None if unknown."""
    if node is None:
        return None
    meta = _meta(node)
    if meta is None:
        return None
    line, col = meta
    lines = text.splitlines() or [""]
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    if len(shown) > 120:
        lo = max(0, col - 60)
        shown = ("..." if lo else "") + shown[lo : lo + 120] + "..."
    return f"line {line}, column {col} of the SQL: {shown.strip()}"


def _meta(node: exp.Expression) -> tuple[int, int] | None:
    # sqlglot records positions on identifiers, literals and function names; a node
    # without one is located by its first descendant that has one.
    for n in node.walk():
        m = getattr(n, "_meta", None) or {}
        if "line" in m and "col" in m:
            return int(m["line"]), int(m["col"]) - max(0, int(m.get("end", 0)) - int(m.get("start", 0)))
    return None


def parse_query(text: Any, dialect: str) -> exp.Query:
    """The one query of ``text``; a ``SqlError`` for anything else."""
    if not isinstance(text, str):
        raise SqlError(f"rp.sql takes the query as a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise SqlError(f"the SQL is {len(text):,} characters long; relplan reads at most {MAX_CHARS:,}")
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(text)
    except (TokenError, SqlglotError) as e:
        raise SqlError(f"cannot read the SQL: {_first_line(e)}") from None
    depth = 0
    for tok in tokens:
        if tok.token_type == sqlglot.TokenType.L_PAREN:
            depth += 1
            if depth > MAX_PARENS:
                raise SqlError(
                    f"the SQL nests parentheses more than {MAX_PARENS} deep "
                    f"(line {tok.line}, column {tok.col}); relplan refuses it rather than risk the stack"
                )
        elif tok.token_type == sqlglot.TokenType.R_PAREN:
            depth = max(0, depth - 1)
    try:
        statements = sqlglot.parse(text, read=dialect)
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        where = f" at line {err.get('line')}, column {err.get('col')}" if err.get("line") else ""
        desc = err.get("description") or _first_line(e)
        raise SqlError(f"cannot parse the SQL ({dialect}){where}: {desc}") from None
    except RecursionError:
        raise SqlError("the SQL is nested too deeply to parse; simplify it or split it into CTEs") from None
    except (SqlglotError, RelplanError) as e:
        raise SqlError(f"cannot parse the SQL ({dialect}): {_first_line(e)}") from None
    statements = [s for s in statements if s is not None]
    if not statements:
        raise SqlError("the SQL has no statement; give rp.sql one SELECT query")
    if len(statements) > 1:
        second = statements[1]
        raise SqlError(
            f"the SQL has {len(statements)} statements; rp.sql reads one query "
            f"(the second: {_head(second.sql(dialect=dialect))})",
            where=locate(text, second),
        )
    stmt = statements[0]
    if not isinstance(stmt, exp.Query):
        kind = stmt.key.upper() if isinstance(stmt, exp.Expression) else type(stmt).__name__
        raise SqlError(
            f"rp.sql reads one query (SELECT ...), not a {kind} statement: relplan never changes tables "
            "(DDL and DML are refused)",
            where=locate(text, stmt),
        )
    deepest = _depth(stmt)
    if deepest > MAX_DEPTH:
        raise SqlError(f"the SQL's expressions nest {deepest} deep; relplan reads at most {MAX_DEPTH}")
    return stmt


def _depth(root: exp.Expression) -> int:
    best = 0
    stack: list[tuple[exp.Expression, int]] = [(root, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        if best > MAX_DEPTH:
            return best
        for child in node.iter_expressions():
            stack.append((child, d + 1))
    return best


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _head(sql: str) -> str:
    return sql if len(sql) <= 60 else sql[:57] + "..."
