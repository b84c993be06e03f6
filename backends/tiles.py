"""Tiled lowering of sliding frames ``(t - w, t]`` (frames the ``tile_long_windows`` rule marked).

For a tile size ``h`` dividing ``w``, the frame of a row at time ``t`` in tile
``T = t - t mod h`` is three disjoint parts:

    head: rows of tile T - w later than t - w       (a suffix of that tile)
    full: the tiles T - w + h ... T - h, whole       (partial aggregates per tile)
    tail: rows of tile T up to t, ties included      (a prefix of the current tile)

so each aggregate is rebuilt from its values over the parts (count and sum add,
min and max take the extreme, mean divides the summed sums by the summed counts).
The value depends only on (key, t), so it is computed once per distinct (key, t)
and joined back to the rows. CTEs, per tiled frame:

    E  rows with a non-NULL key: keys, t in microseconds, its tile, masked arguments
    T  partial aggregates per key and tile                       (GROUP BY)
    F  the full tiles of each tile's frame                       (a window over T)
    G  partial aggregates per key and time                       (GROUP BY)
    P  per (key, t): prefix and suffix within its tile           (windows over G)
    R  per (key, t): prefix + full + the head, the suffix at the first time of
       tile T - w after t - w                                    (ASOF JOIN of P with P)

and a last CTE puts the rows, the untiled frames' window functions and R's values
together in the node's column order. DuckDB only (ASOF JOIN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from relplan.backends.sql import col, ident, lit
from relplan.ir.aggregates import AggCall
from relplan.ir.nodes import WindowAggregate
from relplan.ir.windows import Frame

if TYPE_CHECKING:
    from relplan.backends.sql import SqlLowering

US, TILE = "__rp_us", "__rp_tile"  # a row's time in microseconds, and its tile's start
# For a row at t in tile T: the time and tile where its frame's head lies (t - w, T - w).
HEAD_US, HEAD_TILE = "__rp_head_us", "__rp_head_tile"

# Per aggregate: the partials it is rebuilt from, each (partial, aggregate over rows).
_PARTIALS: dict[str, tuple[tuple[str, type[exp.Expression]], ...]] = {
    "count": (("count", exp.Count),),
    "sum": (("sum", exp.Sum),),
    "min": (("min", exp.Min),),
    "max": (("max", exp.Max),),
    "mean": (("sum", exp.Sum), ("count", exp.Count)),
}
# How values of a partial over parts combine into its value over their union.
_COMBINE: dict[str, type[exp.Expression]] = {"count": exp.Sum, "sum": exp.Sum, "min": exp.Min, "max": exp.Max}


def _and(*conds: exp.Expression) -> exp.Expression:
    out = conds[0]
    for c in conds[1:]:
        out = exp.And(this=out, expression=c)
    return out


def _window(e: exp.Expression, partition: list[str], order: str, kind: str, start: object, end: object) -> exp.Window:
    def bound(b: object) -> tuple[exp.Expression | str, str | None]:
        if b == "CURRENT ROW":
            return "CURRENT ROW", None
        if b in ("UNBOUNDED PRECEDING", "UNBOUNDED FOLLOWING"):
            return "UNBOUNDED", str(b).split()[1]
        n, side = b  # type: ignore[misc]
        return lit(n), side

    (s, s_side), (e_, e_side) = bound(start), bound(end)
    spec = exp.WindowSpec(kind=kind, start=s, start_side=s_side, end=e_, end_side=e_side)
    return exp.Window(
        this=e,
        partition_by=[col(k) for k in partition],
        order=exp.Order(expressions=[exp.Ordered(this=col(order))]),
        spec=spec,
    )


class TiledWindows:
    """The CTEs of one WindowAggregate node with tiled frames (see the module docstring)."""

    def __init__(self, low: SqlLowering, n: WindowAggregate, src: str, k: int) -> None:
        self.low, self.n, self.src, self.k = low, n, src, k
        self.out: list[tuple[str, exp.Expression]] = []

    def add(self, q: exp.Expression) -> str:
        """Append a CTE (named t<k>, t<k+1>, ...); returns its name."""
        name = f"t{self.k + len(self.out)}"
        self.out.append((name, q))
        return name

    def ctes(self) -> list[tuple[str, exp.Expression]]:
        n = self.n
        native = tuple((f, aggs) for f, aggs in n.windows if f.tile is None)
        rows = self.src
        if native:
            rows = self.add(self.low.window_aggregate(WindowAggregate(n.input, n.keys, n.order, native), self.src))
        tiled_columns: dict[str, exp.Expression] = {}  # output column -> its value in the final SELECT
        joins: list[tuple[str, str]] = []  # (R CTE, alias)
        for g, (frame, aggs) in enumerate((f, a) for f, a in n.windows if f.tile is not None):
            alias = f"r{g}"
            joins.append((self.tiled_frame(frame, aggs), alias))
            for j, a in enumerate(aggs):
                value = self.low.cast(col(f"__rp_v{j}", alias), a.dtype)
                tiled_columns[a.name] = exp.alias_(value, ident(a.name), copy=False)
        cols: list[exp.Expression] = [col(f.name, "i") for f in n.input.schema]
        for _, a in n.calls:
            cols.append(tiled_columns.get(a.name) or col(a.name, "i"))
        q = exp.select(*cols).from_(exp.Table(this=ident(rows)).as_(ident("i")), copy=False)
        for r, alias in joins:
            on = _and(
                *[exp.EQ(this=col(key, "i"), expression=col(key, alias)) for key in n.keys],
                exp.EQ(this=self.low.epoch_us(col(n.order, "i")), expression=col(US, alias)),
            )
            q = q.join(exp.Table(this=ident(r)).as_(ident(alias)), on=on, join_type="left", copy=False)
        self.add(q)
        return self.out

    def tiled_frame(self, frame: Frame, aggs: tuple[AggCall, ...]) -> str:
        """CTEs E, T, F, P, R of one tiled frame; returns R's name."""
        n, low = self.n, self.low
        w, h = frame.lower, frame.tile
        assert w is not None and h is not None
        keys = list(n.keys)

        # Each distinct (argument, filter) once, masked: NULL where the filter drops the row.
        args: dict[tuple[object, object], int] = {}
        for a in aggs:
            args.setdefault((a.arg, a.filter), len(args))
        masked = []
        for arg, cond in args:
            value = low.expr(arg) if arg is not None else lit(1)  # type: ignore[arg-type]
            masked.append(value if cond is None else exp.Case().when(low.expr(cond), value, copy=False))  # type: ignore[arg-type]
        # Each distinct (argument, partial) once: p{i} names it in every CTE.
        partials: dict[tuple[int, str], int] = {}
        for a in aggs:
            for partial, _ in _PARTIALS[a.func]:
                partials.setdefault((args[(a.arg, a.filter)], partial), len(partials))
        over_rows = {partial: fn for a in aggs for partial, fn in _PARTIALS[a.func]}

        def of_rows(i: int, partial: str) -> exp.Expression:
            return over_rows[partial](this=col(f"__rp_a{i}"))

        def combine(column: str, partial: str) -> exp.Expression:
            return _COMBINE[partial](this=col(column))

        us = low.epoch_us(col(n.order))
        rows = exp.select(
            *[col(key) for key in keys],
            exp.alias_(us, ident(US), copy=False),
            exp.alias_(exp.Sub(this=us.copy(), expression=low.pymod(us.copy(), lit(h))), ident(TILE), copy=False),
            *[exp.alias_(v, ident(f"__rp_a{i}"), copy=False) for i, v in enumerate(masked)],
        ).from_(ident(self.src), copy=False)
        if keys:
            rows = rows.where(low.keys_present(n.keys), copy=False)
        e_name = self.add(rows)

        def grouped(by: list[str], source: str) -> str:
            """Partials per ``by`` (key, tile) or (key, time, tile)."""
            q = exp.select(
                *[col(c) for c in by],
                *[exp.alias_(of_rows(i, partial), ident(f"__rp_p{p}"), copy=False) for (i, partial), p in partials.items()],
            ).from_(ident(source), copy=False).group_by(*[col(c) for c in by], copy=False)
            return self.add(q)

        t_name = grouped([*keys, TILE], e_name)
        full = exp.select(
            *[col(key) for key in keys], col(TILE),
            *[
                exp.alias_(
                    _window(combine(f"__rp_p{p}", partial), keys, TILE, "RANGE", (w - h, "PRECEDING"), (h, "PRECEDING")),
                    ident(f"__rp_full{p}"), copy=False,
                )
                for (_, partial), p in partials.items()
            ],
        ).from_(ident(t_name), copy=False)
        f_name = self.add(full)

        # One row per (key, time): the time's partials, then the prefix of its tile up to
        # it and the suffix from it (ROWS over distinct times: exactly the RANGE peers).
        times = grouped([*keys, US, TILE], e_name)
        within = [*keys, TILE]
        edges = exp.select(
            *[col(key) for key in keys], col(US), col(TILE),
            exp.alias_(exp.Sub(this=col(US), expression=lit(w)), ident(HEAD_US), copy=False),
            exp.alias_(exp.Sub(this=col(TILE), expression=lit(w)), ident(HEAD_TILE), copy=False),
            *[
                exp.alias_(_window(combine(f"__rp_p{p}", partial), within, US, "ROWS", "UNBOUNDED PRECEDING", "CURRENT ROW"),
                           ident(f"__rp_pre{p}"), copy=False)
                for (_, partial), p in partials.items()
            ],
            *[
                exp.alias_(_window(combine(f"__rp_p{p}", partial), within, US, "ROWS", "CURRENT ROW", "UNBOUNDED FOLLOWING"),
                           ident(f"__rp_suf{p}"), copy=False)
                for (_, partial), p in partials.items()
            ],
        ).from_(ident(times), copy=False)
        p_name = self.add(edges)

        # The head: the suffix at the first time of tile T - w after t - w (none: empty head).
        head_on = _and(
            *[exp.EQ(this=col(key, "p"), expression=col(key, "h")) for key in keys],
            exp.EQ(this=col(HEAD_TILE, "p"), expression=col(TILE, "h")),
            exp.LT(this=col(HEAD_US, "p"), expression=col(US, "h")),
        )
        full_on = _and(
            *[exp.EQ(this=col(key, "p"), expression=col(key, "f")) for key in keys],
            exp.EQ(this=col(TILE, "p"), expression=col(TILE, "f")),
        )

        def value_of(a: AggCall, partial: str) -> exp.Expression:
            """``partial`` of ``a``'s argument over the whole frame: tail + full tiles + head."""
            p = partials[(args[(a.arg, a.filter)], partial)]
            tail, full, head = col(f"__rp_pre{p}", "p"), col(f"__rp_full{p}", "f"), col(f"__rp_suf{p}", "h")
            # ignore_nulls: DuckDB's LEAST/GREATEST skip NULLs (an empty part); sqlglot
            # would otherwise wrap them in a CASE that makes any empty part NULL.
            if partial == "min":
                return exp.Least(this=tail, expressions=[full, head], ignore_nulls=True)
            if partial == "max":
                return exp.Greatest(this=tail, expressions=[full, head], ignore_nulls=True)
            total = exp.Add(
                this=exp.Add(
                    this=exp.Coalesce(this=tail, expressions=[lit(0)]), expression=exp.Coalesce(this=full, expressions=[lit(0)])
                ),
                expression=exp.Coalesce(this=head, expressions=[lit(0)]),
            )
            if partial == "count":
                return total  # 0 when every part is empty
            empty = _and(*[exp.Is(this=c.copy(), expression=exp.Null()) for c in (tail, full, head)])
            return exp.Case().when(empty, exp.Null(), copy=False).else_(total, copy=False)  # a sum: NULL when empty

        values = []
        for j, a in enumerate(aggs):
            if a.func == "mean":
                value: exp.Expression = exp.Div(
                    this=low.cast(value_of(a, "sum"), a.dtype),
                    expression=exp.Nullif(this=value_of(a, "count"), expression=lit(0)),
                )
            else:
                value = value_of(a, a.func)
            values.append(exp.alias_(value, ident(f"__rp_v{j}"), copy=False))
        result = (
            exp.select(*[col(key, "p") for key in keys], col(US, "p"), *values)
            .from_(exp.Table(this=ident(p_name)).as_(ident("p")), copy=False)
            .join(exp.Table(this=ident(p_name)).as_(ident("h")), on=head_on, join_type="asof left", copy=False)
            .join(exp.Table(this=ident(f_name)).as_(ident("f")), on=full_on, join_type="left", copy=False)
        )
        return self.add(result)
