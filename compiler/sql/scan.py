"""A fast tokenizer for common SQL text: sqlglot's exact tokens, or None.

Why it exists: reading a 1,000-feature workload written as SQL (issue 19: at most twice
the Python DSL's time) spends most of its time in sqlglot's parse, and a third of that
parse in sqlglot's pure-Python tokenizer: about 55-60 ms for the benchmark's 14,758
tokens (bench/test_sql_frontend_bench.py, "per key, named windows"), some 4 us a token,
in ``_scan_keywords``, ``_scan_var``, ``_advance`` and ``_add``. The compiled ``sqlglotc``
build cannot be used (relplan subclasses sqlglot's dialect Parser and Generator
classes, which sqlglotc forbids). This module reads the same text with one compiled
regular expression, about three times faster (some 18 ms there, a third of it making
sqlglot's own ``Token`` objects); measured in one process on CPU time, that took the
benchmark's SQL path from 2.5 to 1.9 times the DSL's (255 ms to 195 ms, the DSL 102 ms).

What it promises: for a text it accepts, ``scan`` returns exactly the list sqlglot's
tokenizer of the dialect returns (the same ``token_type``, ``text``, ``line``, ``col``,
``start``, ``end`` and ``comments`` of every token); for anything else it returns None
and the caller uses sqlglot's tokenizer. tests/test_sql_scan.py checks the promise on
generated and hostile texts in every dialect relplan reads.

How it follows sqlglot and each dialect: everything is built from the dialect
tokenizer's own tables (KEYWORDS, SINGLE_TOKENS, VAR_SINGLE_TOKENS, its quotes,
identifier quotes, comment markers and keyword trie, COMMANDS), never from a copied
keyword list. Where sqlglot's keyword trie could read more than one word or character
as one token (``GROUP BY``, ``<=``, ``::``, ``--``, ``N'...'``), the trie walk of
sqlglot's ``TokenizerCore._scan_keywords`` is repeated on those few places and its
outcome taken, or the text declined. A dialect whose tokenizer replaces sqlglot's
``tokenize`` is never scanned here.

It reads (the common text of features): ASCII words (keywords and names), integers and
decimals (``12``, ``3.5``), strings and quoted names on one line without escapes
(``'failed'``, ``"amount"``, `` `amount` ``), ``( ) [ ] , . ; * = < > + - / % : | !``
and the operators the dialect's trie makes of them (``<=``, ``<>``, ``!=``, ``||``,
``::``, ...), spaces, tabs and line breaks (``\\n``, ``\\r\\n``, ``\\r``), ``--`` comments and
``/* */`` comments that do not nest.

It declines (returns None for) the whole text when it holds: any non-ASCII character;
any other whitespace or control character outside a string (or a multi-word keyword,
which sqlglot reads over any whitespace but a line break); a backslash; a string or
quoted name with an escape, a doubled quote or a line break; a quote sqlglot reads as
something else (``N'...'``, ``X'...'``, ``E'...'``, ``$$...$$``, triple quotes); numbers with an
exponent, a suffix, a trailing dot or underscores (``1e5``, ``10L``, ``1.``, ``1_000``,
``0x1F``) or a name starting with a digit; ``@``, ``$``, ``#``, ``?``, ``&``, ``^``, ``~``, braces
and backslashes; an unterminated, nested or hint (``/*+``) comment; a keyword sqlglot
reads across a line break (``GROUP\\nBY``, where sqlglot's own line count is off); a
keyword of the dialect's COMMANDS at the start of a statement (whose rest sqlglot
reads as one string).
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot.tokens import Token, Tokenizer, TokenType

try:  # the upper-casing table sqlglot's trie walk uses (ASCII letters only)
    from sqlglot.tokenizer_core import _CHAR_UPPER
except ImportError:  # pragma: no cover - a sqlglot without it: the scan declines every text
    _CHAR_UPPER = None

__all__ = ["scan"]

# Characters the scan reads as sqlglot's single tokens, when the dialect has them as
# such (and not as parts of names: VAR_SINGLE_TOKENS).
_PUNCT = "()[],.;*=<>+-/%:|!"

# Group numbers of the scanner's regular expression (see _Scanner.__init__).
_WORD, _NUMBER, _PUNCT_G, _STRING, _IDENT, _BREAK, _TRIE = 1, 2, 3, 4, 5, 6, 7

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # line breaks as sqlglot's _advance counts them
_SPACE_RUN = re.compile(r"\s+")
_LF = re.compile(r"\n")
_CR_OR_LF = re.compile(r"[\r\n]")

_VAR = TokenType.VAR
_NUMBER_T = TokenType.NUMBER
_STRING_T = TokenType.STRING
_IDENTIFIER_T = TokenType.IDENTIFIER
_SEMICOLON = TokenType.SEMICOLON


class _Decline(Exception):
    pass


_NAME = ("v",)
_DECLINE = ("d",)


class _Scanner:
    """The scan of one dialect's tokenizer class, built from its tables."""

    def __init__(self, tok: type[Tokenizer], dialect: Any) -> None:
        single: dict[str, TokenType] = tok.SINGLE_TOKENS
        var_single = set(tok.VAR_SINGLE_TOKENS)
        trie: dict[Any, Any] = tok._KEYWORD_TRIE
        self.keywords: dict[str, TokenType] = tok.KEYWORDS
        self.single = single
        self.trie = trie
        self.quotes = tok._QUOTES
        self.format_strings = tok._FORMAT_STRINGS
        self.comments = tok._COMMENTS
        self.commands = frozenset(tok.COMMANDS)
        self.command_prefix = frozenset(tok.COMMAND_PREFIX_TOKENS)
        self.dash_boundary = bool(tok.DASH_COMMENT_REQUIRES_BOUNDARY)
        self.newline_only = bool(tok.COMMENTS_TERMINATE_AT_NEWLINE_ONLY)
        self.hint_start = tok.HINT_START

        # A character is a var stop for sqlglot's _scan_var when it is whitespace or a
        # single token that is not a VAR_SINGLE_TOKEN: every character the scan starts a
        # token with other than a word character must be one, so that a name ends where
        # sqlglot's does.
        def stops(c: str) -> bool:
            return c in single and c not in var_single

        # sqlglot's trie walk from a word finds a key only if the key starts with the
        # whole word and then a non-word character (a key is never a word alone, and no
        # word character is a single token): the words that start a key, the leads
        # ("GROUP" of "GROUP BY", "N" of "N'", "USER" of "USER-DEFINED").
        keys = list(_trie_keys(trie))
        leads = {m.group() for k in keys if (m := re.match(r"[A-Za-z0-9_]+", k))}
        # A word's type by its upper case, None for the words read through the trie
        # walk (leads) and the COMMANDS (whose statement sqlglot reads as a string).
        self.words: dict[str, TokenType | None] = {
            k: None if k in leads or t in self.commands else t for k, t in self.keywords.items() if k.isidentifier()
        }
        self.words.update(dict.fromkeys(leads))
        # How far sqlglot's trie walk from a character can read: its longest key, and
        # the character where it stops.
        self.window: dict[str, int] = {}
        for k in keys:
            self.window[k[0]] = max(self.window.get(k[0], 1), len(k) + 1)
        self.plans: dict[str, tuple[Any, ...]] = {}

        # Quotes read here: one character opening and closing a plain string (or, for
        # identifier quotes, a quoted name), a var stop, and no longer trie key starting
        # with it (a triple quote): sqlglot's walk then yields the quote alone.
        string_q = [
            q for q, end in self.quotes.items()
            if len(q) == 1 and end == q and q not in tok._IDENTIFIERS and stops(q) and set(trie.get(q, {})) == {0}
        ]
        ident_q = [q for q, end in tok._IDENTIFIERS.items() if len(q) == 1 and end == q and stops(q)]

        # Punctuation: a single token not in a name. A character starting a trie key
        # stands alone only when the next character cannot continue the key (the
        # lookahead), else the trie walk decides (the _TRIE group).
        simple: list[str] = []
        guarded: list[str] = []
        walked: list[str] = []
        for c in _PUNCT:
            if not stops(c) or c in self.quotes or c in tok._IDENTIFIERS:
                continue
            sub = trie.get(c)
            if sub is None:
                simple.append(re.escape(c))
                continue
            walked.append(re.escape(c))
            if 0 in sub:
                continue  # the character alone is a key: always walked
            nxt = set()
            for k in sub:
                if k == " ":
                    nxt.add(r"\s")
                elif isinstance(k, str):
                    nxt.add(re.escape(k))
                    if k.isascii() and k.isalpha():
                        nxt.add(re.escape(k.lower()))
            guarded.append(f"{re.escape(c)}(?![{''.join(sorted(nxt))}])")

        self.ok = (
            _CHAR_UPPER is not None
            # the dialect tokenizes with sqlglot's TokenizerCore as sqlglot sets it up
            and tok.tokenize is Tokenizer.tokenize
            and tok._init_core is Tokenizer._init_core
            and getattr(tok, "NUMBERS_CAN_HAVE_DECIMALS", True)
            # no word character or whitespace is a single token (a name ends at a non-word character)
            and not any(re.fullmatch(r"[A-Za-z0-9_\s]", c) for c in single)
            and not any(t in self.commands for t in single.values())
        )

        def group(parts: list[str]) -> str:
            # a capturing group of the alternatives, or one that never matches: the
            # group numbers stay those of _WORD ... _TRIE
            return "(" + ("|".join(parts) if parts else "(?!)") + ")"

        def quoted(q: str) -> str:
            # q...q on one line, without a backslash, not followed by q (a doubled quote)
            e = re.escape(q)
            return rf"{e}[^{e}\\\r\n]*+{e}(?!{e})"

        alts = [
            r"([A-Za-z_][A-Za-z0-9_]*+)",  # _WORD
            # _NUMBER: sqlglot's number ends at anything but a digit, '.', 'e'/'E',
            # '_' or a letter (a literal suffix or, in Hive's dialects, a name)
            r"([0-9]++(?:\.[0-9]++)?+)(?![.\w])",
            group((["[" + "".join(simple) + "]"] if simple else []) + guarded),  # _PUNCT_G
            group([quoted(q) for q in string_q]),  # _STRING
            group([quoted(q) for q in ident_q]),  # _IDENT
            r"(\r\n?|\n)",  # _BREAK
            group(["[" + "".join(walked) + "]"] if walked else []),  # _TRIE
        ]
        self.pattern = re.compile(r"[ \t]*+(?:" + "|".join(alts) + ")")

    # -- sqlglot's trie walk --------------------------------------------------------

    def walk(self, sql: str, pos: int) -> tuple[str | None, int, bool, bool, str]:
        """The loop of sqlglot's ``TokenizerCore._scan_keywords`` started at ``pos``,
        without its effects: the longest key it found (as written, runs of whitespace
        one space), how many characters it read, and the three facts that decide
        whether the key is taken (the last character read was a space; a single token
        was read; the text ended)."""
        single = self.single
        char_upper = _CHAR_UPPER
        sql_size = len(sql)
        current = pos + 1
        size = 0
        word = None
        chars = sql[pos]
        char = chars
        prev_space = False
        skip = False
        trie = self.trie
        single_token = char in single
        while chars:
            if not skip:
                sub = trie.get(char_upper.get(char, char))
                if sub is None:
                    break
                trie = sub
                if 0 in trie:
                    word = chars
            end = current + size
            size += 1
            if end < sql_size:
                char = sql[end]
                single_token = single_token or char in single
                is_space = char.isspace()
                if not is_space or not prev_space:
                    if is_space:
                        char = " "
                    chars += char
                    prev_space = is_space
                    skip = False
                else:
                    skip = True
            else:
                char = ""
                break
        return word, size, prev_space, single_token, char

    # -- the scan -------------------------------------------------------------------

    def scan(self, sql: str) -> list[Token] | None:
        if not self.ok or not sql.isascii():
            return None
        try:
            return self._scan(sql)
        except _Decline:
            return None

    def _scan(self, sql: str) -> list[Token]:
        tokens: list[Token] = []
        append = tokens.append
        words_get = self.words.get
        keywords_get = self.keywords.get
        commands = self.commands
        plan_of = self._plan
        single = self.single
        scanner_of = self.pattern.scanner
        line = 1
        ls = 0  # where the line starts: a token's col is its last character's column
        pos = 0
        state = _State()

        while True:
            m = None
            if state.pending:
                # A token after comments takes them (a semicolon gives them to the token
                # before it): one match at a time, through _add.
                m = self.pattern.match(sql, pos)
                if m is None:
                    break
                k = m.lastindex
                s, e = m.span(k)
                if k == _BREAK:
                    line += 1
                    ls = e
                elif k == _TRIE or (k == _WORD and words_get(sql[s:e].upper(), _VAR) is None):
                    e, line, ls = self._special(sql, s, tokens, state, line, ls)
                else:
                    tt, text = self._plain(k, sql, s, e)
                    self._add(tokens, state, tt, text, line, e - ls, s, e - 1)
                pos = e
                continue
            special = -1  # where _special goes on, or -1: the scan restarts at `pos`
            matches = iter(scanner_of(sql, pos).match, None)
            for m in matches:
                k = m.lastindex
                if k == _WORD:
                    s, e = m.span(1)
                    word = sql[s:e]
                    tt = words_get(word.upper(), _VAR)
                    if tt is not None:
                        append(Token(tt, word, line, e - ls, s, e - 1))
                        continue
                    # a word starting a trie key (GROUP of GROUP BY), or a COMMAND
                    plan = plan_of(sql, s)
                    if plan is _NAME:
                        tt = keywords_get(word.upper(), _VAR)
                        if tt not in commands:
                            append(Token(tt, word, line, e - ls, s, e - 1))
                            continue
                elif k == _PUNCT_G:
                    s = m.start(3)
                    c = sql[s]
                    append(Token(single[c], c, line, s + 1 - ls, s, s))
                    continue
                elif k == _BREAK:
                    line += 1
                    ls = m.end()
                    continue
                elif k == _NUMBER:
                    s, e = m.span(2)
                    append(Token(_NUMBER_T, sql[s:e], line, e - ls, s, e - 1))
                    continue
                elif k == _STRING:
                    s, e = m.span(4)
                    append(Token(_STRING_T, sql[s + 1 : e - 1], line, e - ls, s, e - 1))
                    continue
                elif k == _IDENT:
                    s, e = m.span(5)
                    append(Token(_IDENTIFIER_T, sql[s + 1 : e - 1], line, e - ls, s, e - 1))
                    continue
                else:  # _TRIE: a character the trie walk decides
                    s = m.start(7)
                    e = s + 1
                    plan = plan_of(sql, s)
                # A key of the trie (GROUP BY, <=) read here, as _special would, and the
                # matches it spans skipped; anything else (a comment, a COMMAND, a
                # declined text) goes to _special.
                if plan[0] == "k" and plan[1] not in commands:
                    _, tt, text, size = plan
                    end = s + size
                    append(Token(tt, text, line, end - ls, s, end - 1))
                    while e < end:
                        m = next(matches, None)
                        if m is None:
                            break
                        e = m.end()
                    if e == end:
                        continue
                    pos = end  # the key ends inside a match: the scan restarts after it
                    break
                special = s
                break
            else:
                # the scanner stopped: at the end, or at what no alternative reads
                pos = m.end() if m is not None else pos
                break
            if special >= 0:
                pos, line, ls = self._special(sql, special, tokens, state, line, ls)

        if sql[pos:].strip(" \t"):
            raise _Decline  # something no alternative reads
        if tokens and state.pending:
            tokens[-1].comments.extend(state.pending)
        return tokens

    def _plain(self, k: int, sql: str, s: int, e: int) -> tuple[TokenType, str]:
        """The type and text of a token the regular expression reads alone."""
        if k == _WORD:
            word = sql[s:e]
            return self.keywords.get(word.upper(), _VAR), word
        if k == _PUNCT_G:
            return self.single[sql[s]], sql[s]
        if k == _NUMBER:
            return _NUMBER_T, sql[s:e]
        if k == _STRING:
            return _STRING_T, sql[s + 1 : e - 1]
        if k == _IDENT:
            return _IDENTIFIER_T, sql[s + 1 : e - 1]
        raise _Decline  # pragma: no cover

    def _add(self, tokens: list[Token], state: _State, tt: TokenType, text: str, line: int, col: int, start: int, end: int) -> None:
        """sqlglot's ``TokenizerCore._add``: comments waiting go to this token, or to the
        one before it when this is a semicolon; a COMMAND at a statement's start makes
        sqlglot read the rest as one string (declined)."""
        if tt in self.commands and (not tokens or tokens[-1].token_type in self.command_prefix):
            raise _Decline
        pending = state.pending
        if pending and tt == _SEMICOLON and tokens:
            tokens[-1].comments.extend(pending)
            pending = []
        tokens.append(Token(tt, text, line, col, start, end, pending))
        state.pending = []

    def _plan(self, sql: str, pos: int) -> tuple[Any, ...]:
        """What sqlglot's ``_scan_keywords`` makes of the text at ``pos`` after its trie
        walk: a token of the dialect's keywords or single tokens (``("k", type, text,
        length)``), a name (``_NAME``), a comment (``("c", marker)``) or something this
        scan declines (``_DECLINE``). Kept per the text the walk can read."""
        window = self.window.get(_CHAR_UPPER.get(sql[pos], sql[pos]), 1)
        key = sql[pos : pos + window]
        plan = self.plans.get(key)
        if plan is not None:
            return plan
        word, size, prev_space, single_token, char = self.walk(sql, pos)
        plan = self._decide(sql, pos, word, size, prev_space, single_token, char)
        # Without a run of whitespace the walk reads at most `window` characters, its
        # last one where it stops: then the outcome is the key's.
        if size < window and len(self.plans) < 4096:
            self.plans[key] = plan
        return plan

    def _decide(self, sql: str, pos: int, word: str | None, size: int, prev_space: bool, single_token: bool, char: str) -> tuple[Any, ...]:
        if word:
            if word in self.quotes or word in self.format_strings:
                return _DECLINE  # a string sqlglot reads its own way (N'...', X'...', $$...$$)
            if word in self.comments and not (word == "--" and self.dash_boundary and not _boundary(sql, pos + 2)):
                return ("c", word)
            if prev_space or single_token or not char:
                upper = word.upper()
                tt = self.keywords.get(upper)
                if tt is not None:
                    span = sql[pos : pos + size]
                    if "\n" in span or "\r" in span or _SPACE_RUN.sub(" ", span).upper() != upper:
                        # sqlglot advances over the key at once: a line break in it is
                        # not counted; a key shorter than what the walk read is not read here
                        return _DECLINE
                    return ("k", tt, upper, size)
        c = sql[pos]
        if c in self.single:
            return ("k", self.single[c], c, 1)
        return _NAME

    def _special(self, sql: str, pos: int, tokens: list[Token], state: _State, line: int, ls: int) -> tuple[int, int, int]:
        """The token (or comment) at ``pos`` as sqlglot's ``_scan_keywords`` reads it;
        returns where the scan goes on, and the line and where it starts."""
        plan = self._plan(sql, pos)
        kind = plan[0]
        if kind == "k":
            _, tt, text, size = plan
            end = pos + size
            self._add(tokens, state, tt, text, line, end - ls, pos, end - 1)
            return end, line, ls
        if kind == "v":  # a name: a word that starts a trie key but is not one here, or a COMMAND
            m = self.pattern.match(sql, pos)
            if m is None or m.lastindex != _WORD:
                raise _Decline  # pragma: no cover
            end = m.end()
            word = sql[pos:end]
            self._add(tokens, state, self.keywords.get(word.upper(), _VAR), word, line, end - ls, pos, end - 1)
            return end, line, ls
        if kind == "c":
            return self._comment(sql, pos, plan[1], tokens, state, line, ls)
        raise _Decline

    def _comment(self, sql: str, pos: int, start: str, tokens: list[Token], state: _State, line: int, ls: int) -> tuple[int, int, int]:
        """sqlglot's ``_scan_comment`` of ``--`` and non-nested ``/* */`` comments."""
        end_marker = self.comments[start]
        start_line = line
        if start == "--" and end_marker is None:
            eol = (_LF if self.newline_only else _CR_OR_LF).search(sql, pos + 2)  # the first, not every, line end
            stop = eol.start() if eol else len(sql)
            text = sql[pos + 2 : stop]
            if "\r" in text:
                raise _Decline  # sqlglot counts it as a line break inside the comment
            after = stop
        elif start == "/*" and end_marker == "*/" and start != self.hint_start:
            close = sql.find("*/", pos + 2)
            if close == -1 or sql.find("/*", pos + 2, close + 1) != -1:
                raise _Decline  # unterminated (sqlglot ends it at the text's end) or nested
            text = sql[pos + 2 : close]
            after = close + 2
            for brk in _LINE_BREAK.finditer(sql, pos + 2, close):
                line += 1
                ls = brk.end()
        else:
            raise _Decline  # a hint, a Jinja comment, or markers sqlglot reads otherwise
        state.pending.append(text)
        # a comment on the line the last token ended on is that token's; others wait
        # for the next token (sqlglot's _prev_token_line)
        prev_line = state.prev_line if state.prev_count == len(tokens) else (tokens[-1].line if tokens else -1)
        if tokens and start_line == prev_line:
            tokens[-1].comments.extend(state.pending)
            state.pending = []
            state.prev_line = line
            state.prev_count = len(tokens)
        return after, line, ls


class _State:
    __slots__ = ("pending", "prev_line", "prev_count")

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.prev_line = -1
        self.prev_count = -1


def _boundary(sql: str, i: int) -> bool:
    """sqlglot's DASH_COMMENT_REQUIRES_BOUNDARY test of the character after ``--``."""
    if i >= len(sql):
        return True
    c = sql[i]
    return c.isspace() or ord(c) < 32 or ord(c) == 127


def _trie_keys(trie: dict[Any, Any], prefix: str = "") -> Any:
    for k, sub in trie.items():
        if k == 0:
            yield prefix
        else:
            yield from _trie_keys(sub, prefix + k)


_SCANNERS: dict[tuple[type, type], _Scanner] = {}


def scan(sql: str, dialect: Any) -> list[Token] | None:
    """sqlglot's tokens of ``sql`` in ``dialect`` (a sqlglot Dialect), or None when the
    text holds anything this scan does not read exactly as sqlglot does."""
    tok = dialect.tokenizer_class
    key = (type(dialect), tok)
    scanner = _SCANNERS.get(key)
    if scanner is None:
        scanner = _SCANNERS[key] = _Scanner(tok, dialect)
    return scanner.scan(sql)
