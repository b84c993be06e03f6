"""Column-level lineage, derived from the IR: which source columns feed each output column.

Every operator states, for each of its output columns, the input columns it depends
on (``column_sources``), and which input columns decide the rows it outputs
(``row_sources``). A dependency is a ``ColumnRef(input, column, role)``: ``input``
is the index into ``node.inputs``, ``column`` an input column (or None: the input's
rows, see below), and ``role`` is

- ``"value"``: the column's value flows into the output's value (a projected
  expression's columns, an aggregate's argument, a column passed through);
- ``"rows"``: the column decides which rows, partitions or order contribute (a
  filter's predicate, an aggregate's FILTER and first/last order, grouping and
  partition keys, a window's order or event time, join keys, a point-in-time
  join's keys and times).

Per node kind (over input 0 unless said otherwise; each ref listed once, in a fixed order):

================  ==========================================================================
Source            a leaf: no dependencies.
Filter            each column c <- c (value) + every predicate column (rows).
Project           name <- the columns of its expression (value).
Aggregate         key k <- k (value) + the other keys (rows);
                  aggregate <- its argument's columns (value) + its FILTER and order
                  columns (rows) + every key (rows).
WindowAggregate   every input column c <- c (value) (rows pass through unchanged);
                  aggregate <- argument (value) + FILTER, order (rows) + partition
                  keys and the window's order column (rows).
TimeWindowAggr.   key k <- k (value) + the other keys and the time column (rows);
                  window_start, window_end <- the time column (value) + keys (rows);
                  aggregate <- as in Aggregate, plus the time column (rows).
Join              a column of either side <- itself on its side (value) + the join
                  keys of both sides (rows), and an interval join's two time
                  columns (rows). Left is input 0, right input 1.
Union             each column <- that column of every member (value).
AsOfJoin          a spine column (input 0) <- itself (value); an aggregate <- its
                  argument on the events (input 1, value) + its FILTER and order
                  columns, the events' ``on`` keys and event time (input 1, rows) +
                  the spine's ``on`` keys and spine time (input 0, rows).
Sink              each column <- itself (value).
================  ==========================================================================

Every column carries the dependencies that decide which rows it appears on: a
filter's predicate reaches every column above it, a join's keys every column of the
join. A column that would read no input column at all (a literal, ``count(*)`` of a
global aggregate) depends instead on its input's rows: ``ColumnRef(0, None,
"rows")``, resolved through ``row_sources``, which says the same per kind (Filter:
the input's rows and the predicate; Aggregate and TimeWindowAggregate: plus keys and
time; Join: both inputs' rows, the keys and an interval join's times; Union: every member's rows; every other
kind: its first input's rows; Source: none).

``plan_lineage(outputs)`` composes these over a whole plan into a networkx DiGraph
from ``("source", source_name, column)`` nodes to ``("output", sink_name, column)``
nodes. An edge's ``roles`` is the set of the roles of the paths between the two:
a path is ``"value"`` if each of its steps is a value step, and ``"rows"`` otherwise.
So ``"value" in roles`` means the source column's values reach the output column's
values; ``"rows"`` that it (also) decides which rows or partitions contribute.

Lineage states what an operator is defined to read, not what an engine may skip:
an aggregate over a frame that holds no time, say (t-1us, t), still reads its
argument here, though its SQL is a constant.

Composition is iterative, in topological order, once per distinct node (a DAG is
never expanded into a tree; a chain of thousands of stacked windows has no
recursion), and a column passed through unchanged shares its input's lineage.

    column_sources(node), row_sources(node)  # one node; RULES: the table of rules by node class
    plan_lineage(plan) -> nx.DiGraph          # the whole plan, source columns -> output columns
    output_lineage(plan)                      # the same as dicts; keep= composes a subset of the steps
    columns_read(relation, ["amt"])           # top-down: per node, the columns those outputs read
    sources_of(graph, "Transactions", "f", role="value")   # what output column f reads by value
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias

import networkx as nx

from relplan.ir.aggregates import AggCall
from relplan.ir.errors import RelplanError, SchemaError, UnsupportedError
from relplan.ir.graph import use_counts, walk
from relplan.ir.nodes import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    Sink,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)

VALUE = "value"
ROWS = "rows"
ROLES = (VALUE, ROWS)


class ColumnRef(NamedTuple):
    """An input column an output column depends on: ``(input index, column, role)``.

    ``column`` None stands for the input's rows (what ``count(*)`` reads)."""

    input: int
    column: str | None
    role: str


Refs: TypeAlias = "tuple[ColumnRef, ...]"


class Sources(NamedTuple):
    """What a rule says of a node: its columns' refs and its rows' refs.

    ``through``: the index of an input every column of which the node passes on
    unchanged (by value, under its own name) besides ``columns`` (WindowAggregate,
    AsOfJoin, Sink), else None. Said once rather than column by column, so that a
    chain of a thousand windows costs no more than its thousand aggregates."""

    columns: dict[str, Refs]
    rows: Refs
    through: int | None = None


Rule: TypeAlias = "Callable[[Any], Sources]"
Keep: TypeAlias = "Callable[[Node, str | None, ColumnRef], bool]"


# ---- the rules, one per node kind -----------------------------------------------------


def _refs(*groups: Iterable[tuple[int, str | None, str]]) -> Refs:
    """The refs of ``groups`` in order, each once (a key read twice is one dependency)."""
    out: dict[ColumnRef, None] = {}
    for g in groups:
        for r in g:
            out.setdefault(ColumnRef(*r), None)
    return tuple(out)


def _cols(i: int, names: Iterable[str], role: str) -> list[tuple[int, str | None, str]]:
    return [(i, c, role) for c in sorted(names)]


def _or_rows(refs: Refs, i: int = 0) -> Refs:
    """``refs``, or the input's rows when it reads no column."""
    return refs if refs else (ColumnRef(i, None, ROWS),)


def _call(a: AggCall, i: int = 0) -> list[tuple[int, str | None, str]]:
    """An aggregate call's own reads: argument (value), FILTER and order (rows)."""
    out = _cols(i, a.arg.columns() if a.arg is not None else (), VALUE)
    out += _cols(i, a.filter.columns() if a.filter is not None else (), ROWS)
    out += _cols(i, (a.order.name,) if a.order is not None else (), ROWS)
    return out


_INPUT_ROWS = (ColumnRef(0, None, ROWS),)


def _source(n: Source) -> Sources:
    return Sources({}, ())


def _filter(n: Filter) -> Sources:
    pred = _cols(0, n.predicate.columns(), ROWS)
    cols = {c: _refs([(0, c, VALUE)], pred) for c in n.schema.names}
    return Sources(cols, _refs([(0, None, ROWS)], pred))


def _project(n: Project) -> Sources:
    return Sources({name: _or_rows(_refs(_cols(0, e.columns(), VALUE))) for name, e in n.exprs}, _INPUT_ROWS)


def _aggregate(n: Aggregate) -> Sources:
    keys = _cols(0, n.keys, ROWS)
    cols = {k: _refs([(0, k, VALUE)], [r for r in keys if r[1] != k]) for k in n.keys}
    for a in n.aggs:
        cols[a.name] = _or_rows(_refs(_call(a), keys))
    return Sources(cols, _refs([(0, None, ROWS)], keys))


def _window_aggregate(n: WindowAggregate) -> Sources:
    frame = _cols(0, n.keys, ROWS) + [(0, n.order, ROWS)]
    return Sources({a.name: _refs(_call(a), frame) for a in n.aggs}, _INPUT_ROWS, through=0)


def _time_window_aggregate(n: TimeWindowAggregate) -> Sources:
    keys = _cols(0, n.keys, ROWS)
    time = [(0, n.time, ROWS)]
    cols = {k: _refs([(0, k, VALUE)], [r for r in keys if r[1] != k], time) for k in n.keys}
    cols[WINDOW_START] = cols[WINDOW_END] = _refs([(0, n.time, VALUE)], keys)
    for a in n.aggs:
        cols[a.name] = _refs(_call(a), keys, time)
    return Sources(cols, _refs([(0, None, ROWS)], keys, time))


def _join(n: Join) -> Sources:
    keys = [(0, lk, ROWS) for lk, _ in n.on] + [(1, rk, ROWS) for _, rk in n.on]
    if n.left_time is not None and n.right_time is not None:
        # An interval join's times decide which pairs match, as its keys do.
        keys += [(0, n.left_time, ROWS), (1, n.right_time, ROWS)]
    cols = {}
    for i, side in enumerate((n.left, n.right)):
        for c in side.schema.names:
            cols[c] = _refs([(i, c, VALUE)], keys)
    return Sources(cols, _refs([(0, None, ROWS), (1, None, ROWS)], keys))


def _union(n: Union) -> Sources:
    members = range(len(n.members))
    cols = {c: tuple(ColumnRef(i, c, VALUE) for i in members) for c in n.schema.names}
    return Sources(cols, tuple(ColumnRef(i, None, ROWS) for i in members))


def _asof_join(n: AsOfJoin) -> Sources:
    events = [(1, e, ROWS) for _, e in n.on] + [(1, n.event_time, ROWS)]
    spine = [(0, s, ROWS) for s, _ in n.on] + [(0, n.spine_time, ROWS)]
    return Sources({a.name: _refs(_call(a, 1), events, spine) for a in n.aggs}, _INPUT_ROWS, through=0)


def _sink(n: Sink) -> Sources:
    return Sources({}, _INPUT_ROWS, through=0)


RULES: dict[type[Node], Rule] = {
    Source: _source,
    Filter: _filter,
    Project: _project,
    Aggregate: _aggregate,
    WindowAggregate: _window_aggregate,
    TimeWindowAggregate: _time_window_aggregate,
    Join: _join,
    Union: _union,
    AsOfJoin: _asof_join,
    Sink: _sink,
}


def sources(node: Node) -> Sources:
    """What the rule of ``node``'s kind says of it (see ``column_sources`` for the plain form)."""
    for cls in type(node).__mro__:
        rule = RULES.get(cls)
        if rule is not None:
            return rule(node)
    raise UnsupportedError(f"column lineage does not know the node kind {node.kind} ({type(node).__name__})")


def column_sources(node: Node) -> dict[str, Refs]:
    """For each output column of ``node``, in output order, the input columns it
    depends on: ``{name: (ColumnRef(input, column, role), ...)}`` (see the module docs)."""
    s = sources(node)
    if s.through is None:
        return s.columns
    passed = {c: (ColumnRef(s.through, c, VALUE),) for c in node.inputs[s.through].schema.names}
    return {**passed, **s.columns}


def row_sources(node: Node) -> Refs:
    """The input columns (and input rows) that decide which rows ``node`` outputs."""
    return sources(node).rows


# ---- composing over a plan ------------------------------------------------------------

# A column's lineage while composing: (source name, column) -> roles as bits.
_V, _R = 1, 2
_ROLE_SETS = {_V: frozenset({VALUE}), _R: frozenset({ROWS}), _V | _R: frozenset({VALUE, ROWS})}
_Lineage: TypeAlias = "dict[tuple[str, str], int]"
_NodeLineage: TypeAlias = "tuple[dict[str, _Lineage], _Lineage]"  # columns, rows


def _merge(refs: Refs, inputs: list[_NodeLineage]) -> _Lineage:
    if len(refs) == 1 and refs[0].role == VALUE and refs[0].column is not None:
        return inputs[refs[0].input][0][refs[0].column]  # passed on: shared, never mutated
    acc: _Lineage = {}
    for i, c, role in refs:
        cols, rows = inputs[i]
        src = rows if c is None else cols[c]
        if role == VALUE:
            for k, bits in src.items():
                acc[k] = acc.get(k, 0) | bits
        else:
            for k in src:
                acc[k] = acc.get(k, 0) | _R
    return acc


def _node_lineage(n: Node, inputs: list[_NodeLineage], keep: Keep | None) -> _NodeLineage:
    if isinstance(n, Source):
        return {c: {(n.name, c): _V} for c in n.schema.names}, {}
    s = sources(n)
    col_refs, row_refs = s.columns, s.rows
    cols: dict[str, _Lineage] = {}
    if s.through is not None:
        passed = inputs[s.through][0]
        if keep is None:
            cols = dict(passed)
        else:
            col_refs = {**{c: (ColumnRef(s.through, c, VALUE),) for c in passed}, **col_refs}
    if keep is not None:
        col_refs = {c: tuple(r for r in refs if keep(n, c, r)) for c, refs in col_refs.items()}
        row_refs = tuple(r for r in row_refs if keep(n, None, r))
    try:
        for c, refs in col_refs.items():
            cols[c] = _merge(refs, inputs)
    except KeyError as e:  # a rule named a column its input lacks: a bug in the rule
        raise SchemaError(f"lineage of {n.kind} ({n.details()}) reads unknown column {e}") from None
    return cols, _merge(row_refs, inputs)


def _outputs(outputs: Any) -> tuple[Sink, ...]:
    if isinstance(outputs, Node):
        outputs = (outputs,)
    elif hasattr(outputs, "outputs") and not isinstance(outputs, Mapping):  # a compiled Plan
        outputs = outputs.outputs
    sinks = tuple(outputs)
    for s in sinks:
        if not isinstance(s, Sink):
            raise RelplanError(f"plan_lineage() takes a plan or its Sink nodes, got {type(s).__name__}: {s!r}")
    return sinks


def output_lineage(
    outputs: Any, *, keep: Keep | None = None
) -> dict[tuple[str, str], dict[tuple[str, str], frozenset[str]]]:
    """(sink name, column) -> {(source name, column): roles} for every output column.

    ``outputs``: a Plan, a Sink, or Sinks. Iterative, one visit per distinct node.
    ``keep(node, column, ref)``, if given, chooses the steps to follow: a ref of
    ``column`` of ``node`` (None: of its rows) is composed only if it returns True
    (tests compare a subset of the steps with what sqlglot's lineage follows)."""
    sinks = _outputs(outputs)
    counts = use_counts(sinks)
    memo: dict[Node, _NodeLineage] = {}
    for n in walk(sinks):
        memo[n] = _node_lineage(n, [memo[i] for i in n.inputs], keep)
        for i in n.inputs:  # forget what no other node reads any more: a chain keeps two
            counts[i] -= 1
            if counts[i] == 0:
                del memo[i]
    out: dict[tuple[str, str], dict[tuple[str, str], frozenset[str]]] = {}
    for s in sinks:
        cols = memo[s][0]
        for c in s.schema.names:
            out[(s.name, c)] = {k: _ROLE_SETS[bits] for k, bits in cols[c].items()}
    return out


def plan_lineage(outputs: Any) -> nx.DiGraph:
    """The column lineage of a plan as a DiGraph: edges from ``("source", name, column)``
    to ``("output", sink name, column)``, each with ``roles`` (a frozenset of "value"
    and/or "rows"). Every column of every source read and every output column is a
    node (with attributes ``kind``, ``name`` and ``column``), with edges or without.

        g = plan_lineage(rp.compile([feature]))
        g.edges[("source", "Transactions", "amt"), ("output", "Transactions", "f")]["roles"]
    """
    sinks = _outputs(outputs)
    g = nx.DiGraph()
    for n in walk(sinks):
        if isinstance(n, Source):
            for c in n.schema.names:
                g.add_node(("source", n.name, c), kind="source", name=n.name, column=c)
    for (sink, col), deps in output_lineage(sinks).items():
        target = ("output", sink, col)
        g.add_node(target, kind="output", name=sink, column=col)
        for (src, scol), roles in deps.items():
            g.add_edge(("source", src, scol), target, roles=roles)
    return g


def sources_of(graph: nx.DiGraph, output: str, column: str, *, role: str | None = None) -> frozenset[tuple[str, str]]:
    """The (source, column) pairs output column ``output.column`` depends on: any role,
    or only those with ``role`` among their roles (``"value"``: whose values reach it)."""
    if role is not None and role not in ROLES:
        raise RelplanError(f"unknown lineage role {role!r}; use one of {', '.join(ROLES)}")
    node = ("output", output, column)
    if node not in graph:
        raise SchemaError(f"the plan has no output column {output}.{column}")
    return frozenset(
        (u[1], u[2]) for u, _, roles in graph.in_edges(node, data="roles") if role is None or role in roles
    )


def columns_read(root: Node, columns: Iterable[str], *, rows: bool = False) -> dict[Node, frozenset[str]]:
    """Per node of the relation ``root``, the columns of it that output ``columns`` of
    ``root`` read (by value or to decide rows), composed top-down by the same rules
    as ``output_lineage``; ``rows``: its rows too (what ``count(*)`` reads).

    A node whose rows are read but none of whose columns are has an empty set; a node
    nothing reads is absent. At a Source the set is the source columns read: a
    feature over merged rows reads exactly these from every source it joins
    (``catalog/fingerprint.py`` hashes the relation as far as they go)."""
    wanted: dict[Node, set[str | None]] = {root: set(columns) | ({None} if rows else set())}
    order = list(walk([root]))  # inputs before users: users first when reversed
    for n in reversed(order):
        need = wanted.get(n)
        if need is None or isinstance(n, Source):
            continue
        s = sources(n)
        refs: list[ColumnRef] = []
        for c in need:
            if c is None:
                refs += row_sources(n)
            elif c in s.columns:
                refs += s.columns[c]
            elif s.through is not None:
                refs.append(ColumnRef(s.through, c, VALUE))
            else:
                raise SchemaError(f"{n.kind} ({n.details()}) has no column {c!r} to trace")
        for r in refs:
            wanted.setdefault(n.inputs[r.input], set()).add(r.column)
    return {n: frozenset(c for c in need if c is not None) for n, need in wanted.items()}
