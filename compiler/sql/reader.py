"""Reading SQL text: one query of a known dialect, within limits, and where each part is.

Everything here turns sqlglot's view of the text into relplan's: a parse error, a
second statement, DDL or DML, an unknown dialect or a query too large or too deeply
nested is a ``SqlError`` naming the line and column, never a sqlglot exception or a
RecursionError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokens import Token, TokenType

import relplan.backends.flink_dialect  # noqa: F401  (registers the "flink" dialect with sqlglot)
from relplan.compiler.sql.expressions import SQL_TEXT, Located
from relplan.compiler.sql.scan import scan
from relplan.ir.errors import RelplanError, SqlError

#: The dialects whose meaning relplan reads (shared/ENGINE-FACTS.md and docs/sql.md).
DIALECTS = ("duckdb", "spark", "flink")

#: Limits that keep a hostile query from hanging or exhausting the stack: characters of
#: text, parentheses (and CASE ... END) open at once, and depth of the parsed tree.
#: sqlglot parses a parenthesis with some 15 nested calls, so MAX_PARENS stays well
#: under Python's recursion limit divided by that.
MAX_CHARS = 1_000_000
MAX_PARENS = 32
MAX_DEPTH = 100

# Statements that change tables or the session: refused as such.
_CHANGES = {
    "CREATE", "INSERT", "DELETE", "UPDATE", "DROP", "ALTER", "MERGE", "TRUNCATE", "TRUNCATETABLE", "COPY",
    "REPLACE", "GRANT", "REVOKE", "SET", "USE", "ATTACH", "DETACH", "INSTALL", "LOAD", "VACUUM", "CALL",
    "PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "TRANSACTION", "CACHE", "UNCACHE", "REFRESH", "ANALYZE",
    "EXPORT", "IMPORT", "CHECKPOINT", "RESET",
}

# Statements that only look (at a plan, a table, the catalog): refused as not a query.
_LOOKS = {"EXPLAIN", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE"}


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
    raise SqlError(f"unknown dialect {_shown(dialect)} ({known}); relplan reads {', '.join(DIALECTS)}")


def locate(text: str, node: exp.Expression | None) -> str | None:
    """``line L, column C`` of ``node`` in ``text`` with the line shown, or None if unknown."""
    if node is None:
        return None
    start = _start(node)
    if start is None:
        return None
    return _where(text, start)


_BREAK = re.compile(r"\r\n|\r|\n")  # line breaks as sqlglot counts them


def _where(text: str, start: int) -> str:
    start = max(0, min(start, len(text)))
    breaks = list(_BREAK.finditer(text, 0, start))
    line = len(breaks) + 1
    line_start = breaks[-1].end() if breaks else 0
    col = start - line_start + 1
    line_end = _BREAK.search(text, start)
    shown = text[line_start : line_end.start() if line_end else len(text)]
    if len(shown) > 120:
        lo = max(0, col - 60)
        shown = ("..." if lo else "") + shown[lo : lo + 120] + "..."
    return f"line {line}, column {col} of the SQL: {_printable(shown.strip())}"


def _printable(s: str) -> str:
    # The user's own text, with control characters (NUL, escapes of a terminal) spelled out.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def _start(node: exp.Expression) -> int | None:
    """The offset of ``node``'s first character: sqlglot records where identifiers,
    literals and function names are (and relplan's parser, where every node ends);
    a node is where the earliest of its parts is."""
    best: int | None = None
    for n in node.walk():
        m = n._meta
        if m and "start" in m:
            s = int(m["start"])
            best = s if best is None else min(best, s)
    return best


_PARSERS: dict[tuple[type, bool], type] = {}


def _parser(dialect: sqlglot.Dialect, locating: bool = True) -> Any:
    """The dialect's parser as relplan reads it; ``locating``: also recording on every
    node the last token it was made from (sqlglot records positions on a few kinds of
    node only), so that every error can name its line and column. Recording costs a
    tenth of the parse, so a query is first read without it (``read_query``)."""
    base = dialect.parser_class
    cls = _PARSERS.get((base, locating))
    if cls is None:

        def expression(self: Any, instance: Any, token: Token | None = None, comments: Any = None) -> Any:
            instance = base.expression(self, instance, token, comments)
            prev = self._prev
            if prev is not None and prev.token_type != TokenType.SENTINEL and not (instance._meta and "start" in instance._meta):
                instance.update_positions(prev)
            return instance

        def warn_unsupported(self: Any) -> None:
            pass  # sqlglot logs a warning before reading a statement as a Command; relplan refuses it with an error

        def parse_group(self: Any, skip_group_by_token: bool = False) -> Any:
            # sqlglot stops GROUP BY at a WINDOW token, so Spark's tumbling window
            # ``GROUP BY window(ts, '1 hour')`` fails with "Expecting )": it reads ``window(``
            # as the start of a WINDOW clause. No WINDOW clause starts with ``WINDOW (``, so
            # relplan's parser (this class only: sqlglot's own stays as it is) reads that
            # token as the function's name.
            if not skip_group_by_token and not self._match(TokenType.GROUP_BY):
                return None
            i, tokens = self._index, self._tokens
            if i + 1 < len(tokens) and tokens[i].token_type == TokenType.WINDOW and tokens[i + 1].token_type == TokenType.L_PAREN:
                tokens[i].token_type = TokenType.VAR
                self._advance(0)  # refresh the current token
            return base._parse_group(self, skip_group_by_token=True)

        methods: dict[str, Any] = {"_warn_unsupported": warn_unsupported, "_parse_group": parse_group}
        if locating:
            methods["expression"] = expression
        cls = type(f"{'Locating' if locating else 'Relplan'}{base.__name__}", (base,), methods)
        _PARSERS[(base, locating)] = cls
    return cls(dialect=dialect)


R = TypeVar("R")


def read_query(text: Any, dialect: str, build: Callable[[exp.Query], R]) -> R:
    """``build`` of the one query of ``text``. The text is parsed without recording
    where every node is; only when reading it or building from it fails is it parsed
    again, locating every node, and built again, so that the error (the same one)
    names its line and column."""
    try:
        return build(parse_query(text, dialect, locating=False))
    except (SqlError, Located):
        pass
    return build(parse_query(text, dialect))


def parse_query(text: Any, dialect: str, *, locating: bool = True) -> exp.Query:
    """The one query of ``text``; a ``SqlError`` for anything else."""
    if not isinstance(text, str):
        raise SqlError(f"rp.sql takes the query as a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise SqlError(f"the SQL is {len(text):,} characters long; relplan reads at most {MAX_CHARS:,}")
    d = sqlglot.Dialect.get_or_raise(dialect)
    # The first, unlocated read takes scan.scan's tokens (sqlglot's own, made a few times
    # faster) when it reads the whole text; the located read, which makes the errors,
    # always takes sqlglot's tokenizer.
    tokens = None if locating else scan(text, d)
    if tokens is None:
        tokenizer = d.tokenizer()
        try:
            tokens = tokenizer.tokenize(text)
        except (TokenError, SqlglotError) as e:
            raise _token_error(text, tokenizer, e) from None
    _check_nesting(text, tokens)
    try:
        statements = _parser(d, locating).parse(tokens, text)
    except ParseError as e:
        raise _parse_error(text, dialect, e, tokens) from None
    except RecursionError:
        raise SqlError("the SQL is nested too deeply to parse; simplify it or split it into CTEs") from None
    except (SqlglotError, RelplanError) as e:
        raise SqlError(f"cannot parse the SQL ({dialect}): {_first_line(e)}") from None
    # sqlglot keeps comments after a semicolon as a statement of their own (Semicolon): no statement
    statements = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise SqlError("the SQL has no statement; give rp.sql one SELECT query")
    if len(statements) > 1:
        second = _second_statement(text, tokens)
        raise SqlError(
            f"the SQL has {len(statements)} statements; rp.sql reads one query "
            f"(the second: {_head(text[second:]) if second is not None else statements[1].key.upper()})",
            where=_where(text, second) if second is not None else locate(text, statements[1]),
        )
    stmt = statements[0]
    if not isinstance(stmt, exp.Query):
        kind = _kind(stmt, tokens)
        if kind in _CHANGES or (isinstance(stmt, (exp.DDL, exp.DML, exp.Command)) and kind not in _LOOKS):
            why = f"not {_a(kind)} {kind} statement: relplan never changes tables or settings (DDL and DML are refused)"
        else:
            why = f"not {_a(kind)} {kind} statement"
        raise SqlError(f"rp.sql reads one query (SELECT ...), {why}", where=_where(text, tokens[0].start) if tokens else None)
    deepest, into, nul = _look_through(stmt, text)
    if into is not None:
        raise SqlError(
            "rp.sql reads one query: SELECT ... INTO creates a table, and relplan never changes tables",
            where=locate(text, into),
        )
    if nul is not None:
        raise SqlError(
            f"the name {_shown(nul.this)} holds a NUL character, which engines read as the end of the name; rename it",
            where=locate(text, nul),
        )
    stmt.meta[SQL_TEXT] = text  # the names of functions as written, for messages
    if deepest > MAX_DEPTH:
        raise SqlError(
            f"the SQL's expressions nest more than {MAX_DEPTH} deep (a long chain of operators or UNION ALLs "
            "counts each step); split it into CTEs"
        )
    return stmt


def _check_nesting(text: str, tokens: list[Token]) -> None:
    """Parentheses and CASE ... END open at once, counted on the tokens, before sqlglot
    parses them recursively. Token types are compared by identity: comparing enums by
    equality made this loop cost a twentieth of a 1,000-feature query's parse."""
    if text.count("(") + text.upper().count("CASE") <= MAX_PARENS:  # fewer openers than the limit at all
        return
    l_paren, case, r_paren, end = TokenType.L_PAREN, TokenType.CASE, TokenType.R_PAREN, TokenType.END
    depth = 0
    for tok in tokens:
        tt = tok.token_type
        if tt is l_paren or tt is case:
            depth += 1
            if depth > MAX_PARENS:
                what = "CASE expressions" if tt is case else "parentheses"
                raise SqlError(
                    f"the SQL nests parentheses and CASE expressions more than {MAX_PARENS} deep (here: {what}); "
                    "relplan refuses it rather than risk the stack: split it into CTEs",
                    where=_where(text, tok.start),
                )
        elif (tt is r_paren or tt is end) and depth:
            depth -= 1


def _token_error(text: str, tokenizer: Any, e: Exception) -> SqlError:
    core = getattr(tokenizer, "_core", tokenizer)
    start = getattr(core, "_start", None)
    if not isinstance(start, int) or not 0 <= start < len(text):
        return SqlError(f"cannot read the SQL: {_first_line(e)}")
    c = text[start]
    if c in "'\"`":
        what = f"a quoted text starting with {c} is never closed (or holds an escape the dialect does not read)"
    else:
        what = f"cannot read the text starting with {_head(text[start:], 20)!r}"
    return SqlError(f"cannot read the SQL: {what}", where=_where(text, start))


_TOKEN_REPR = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: \d+, col: \d+, start: \d+, end: \d+, comments: \[.*?\]>")


def _parse_error(text: str, dialect: str, e: ParseError, tokens: list[Token]) -> SqlError:
    err = e.errors[0] if e.errors else {}
    desc = str(err.get("description") or _first_line(e))
    desc = _TOKEN_REPR.sub(lambda m: "the end of the SQL" if m.group(1) == "SENTINEL" else repr(m.group(2)), desc)
    desc = re.sub(r"<class 'sqlglot\.expressions\.(?:\w+\.)*(\w+)'>", lambda m: m.group(1).upper(), desc)
    line, col = err.get("line"), err.get("col")
    where = None
    at = [t for t in tokens if t.line == line and t.col == col]  # the token sqlglot stopped at
    if at:
        where = _where(text, at[0].start)
    elif isinstance(line, int) and isinstance(col, int):
        highlight = err.get("highlight") or ""
        lines = text.split("\n")
        if 0 < line <= len(lines):
            offset = sum(len(s) + 1 for s in lines[: line - 1])
            start = offset + max(0, col - len(highlight)) if highlight and "\n" not in highlight else offset + max(0, col - 1)
            where = _where(text, start)
    return SqlError(f"cannot parse the SQL ({dialect}): {_head(desc, 200)}", where=where)


def _second_statement(text: str, tokens: list[Token]) -> int | None:
    seen_statement = False
    after_semicolon = False
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            after_semicolon = seen_statement
            continue
        if after_semicolon:
            return tok.start
        seen_statement = True
    return None


def _kind(stmt: exp.Expression, tokens: list[Token]) -> str:
    if isinstance(stmt, exp.Command):
        return str(stmt.this).upper()
    first = next((t for t in tokens if t.token_type != TokenType.SEMICOLON), None)
    if stmt.key in ("alias", "column", "literal", "identifier") and first is not None:
        return _printable(first.text.upper()[:30])
    return stmt.key.upper()


def _a(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _look_through(root: exp.Expression, text: str) -> tuple[int, exp.Expression | None, exp.Expression | None]:
    """The tree's depth, its first SELECT ... INTO, and its first name holding a NUL
    character. Walking a 1,000-feature query's tree cost a fifth of reading its
    features, so the depth is counted level by level over the nodes' arguments, and the
    other two are looked for only when the text could hold them."""
    depth = 0
    level = [root]
    while level:
        depth += 1
        below: list[exp.Expression] = []
        for node in level:
            for v in node.args.values():
                if type(v) is list:
                    below.extend(x for x in v if isinstance(x, exp.Expression))
                elif isinstance(v, exp.Expression):
                    below.append(v)
        level = below
    into = root.find(exp.Into) if _INTO.search(text) else None
    nul = next((n for n in root.find_all(exp.Identifier) if "\x00" in str(n.this)), None) if "\x00" in text else None
    return depth, into, nul


_INTO = re.compile(r"\binto\b", re.IGNORECASE)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return _head(text[0], 200) if text else type(e).__name__


def _head(sql: str, n: int = 60) -> str:
    sql = _printable(sql.strip())
    return sql if len(sql) <= n else sql[: n - 3] + "..."


def _shown(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."
