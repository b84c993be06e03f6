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

from relplan.backends.sql import all_of, any_key_null, col, ident, lit
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Expr
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
        n, low = self.n, self.low
        keys = list(n.keys)
        native = tuple((f, aggs) for f, aggs in n.windows if f.tile is None)
        rows = self.src
        if native:
            rows = self.add(low.window_aggregate(WindowAggregate(n.input, n.keys, n.order, native), self.src))
        us = low.epoch_us(col(n.order))
        rows = self.add(exp.select(exp.Star(), exp.alias_(us, ident(US), copy=False)).from_(ident(rows), copy=False))
        tiled = [(g, f, aggs) for g, (f, aggs) in enumerate((f, a) for f, a in n.windows if f.tile is not None)]
        values: dict[str, exp.Expression] = {}  # output column -> its value over the frame
        joins: list[tuple[str, str, exp.Expression]] = []  # (CTE, alias, join kind, condition)
        for g, frame, aggs in tiled:
            rows, frame_values, frame_joins = self.tiled_frame(g, frame, aggs, rows)
            values.update(frame_values)
            joins += frame_joins
        cols: list[exp.Expression] = [col(f.name, "i") for f in n.input.schema]
        for _, a in n.calls:
            if a.name not in values:
                cols.append(col(a.name, "i"))
                continue
            value = low.cast(values[a.name], a.dtype)
            if keys:  # a NULL key is no entity: NULL, as for every window aggregate
                value = exp.Case().when(any_key_null(keys, "i"), exp.Null(), copy=False).else_(value, copy=False)
            cols.append(exp.alias_(value, ident(a.name), copy=False))
        q = exp.select(*cols).from_(exp.Table(this=ident(rows)).as_(ident("i")), copy=False)
        for cte, alias, kind, on in joins:
            q = q.join(exp.Table(this=ident(cte)).as_(ident(alias)), on=on, join_type=kind, copy=False)
        self.add(q)
        return self.out

    def tiled_frame(
        self, g: int, frame: Frame, aggs: tuple[AggCall, ...], rows: str
    ) -> tuple[str, dict[str, exp.Expression], list[tuple[str, str, str, exp.Expression]]]:
        """CTEs of tiled frame ``g`` (see the module docstring) over ``rows``; returns the
        rows CTE now carrying the frame's prefixes, each aggregate's value (over the
        aliases i, x<g>, f<g>) and the joins those aliases need."""
        n, low = self.n, self.low
        w, h = frame.lower, frame.tile
        assert w is not None and h is not None
        keys = list(n.keys)
        tile = f"__rp_tile{g}"

        # Each distinct (argument, filter) once, masked: NULL where the filter drops the row.
        args: dict[tuple[Expr | None, Expr | None], int] = {}
        for a in aggs:
            args.setdefault((a.arg, a.filter), len(args))
        masked = [low.masked(arg, cond) for arg, cond in args]
        # Each distinct (argument, partial) once: __rp_p<g>_<p> names it in every CTE.
        partials: dict[tuple[int, str], int] = {}
        for a in aggs:
            for partial, _ in _PARTIALS[a.func]:
                partials.setdefault((args[(a.arg, a.filter)], partial), len(partials))
        over_rows = {partial: fn for a in aggs for partial, fn in _PARTIALS[a.func]}

        def name(kind: str, p: int) -> str:
            return f"__rp_{kind}{g}_{p}"

        def of_rows(i: int, partial: str) -> exp.Expression:
            return over_rows[partial](this=col(f"__rp_a{g}_{i}"))

        def combine(column: str, partial: str) -> exp.Expression:
            return _COMBINE[partial](this=col(column))

        # E: the rows, with their tile and masked arguments.
        e_name = self.add(exp.select(
            exp.Star(),
            exp.alias_(exp.Sub(this=col(US), expression=low.pymod(col(US), lit(h))), ident(tile), copy=False),
            *[exp.alias_(v, ident(f"__rp_a{g}_{i}"), copy=False) for i, v in enumerate(masked)],
        ).from_(ident(rows), copy=False))
        # The tail: each row's prefix of its tile, ties included (RANGE: peers are in).
        tails = self.add(exp.select(
            exp.Star(),
            *[
                exp.alias_(_window(of_rows(i, partial), [*keys, tile], US, "RANGE", "UNBOUNDED PRECEDING", "CURRENT ROW"),
                           ident(name("pre", p)), copy=False)
                for (i, partial), p in partials.items()
            ],
        ).from_(ident(e_name), copy=False))

        def grouped(by: list[str]) -> str:
            """Partials of the rows with a key, per ``by``."""
            q = exp.select(
                *[col(c) for c in by],
                *[exp.alias_(of_rows(i, partial), ident(name("p", p)), copy=False) for (i, partial), p in partials.items()],
            ).from_(ident(e_name), copy=False)
            if keys:
                q = q.where(low.keys_present(n.keys), copy=False)
            return self.add(q.group_by(*[col(c) for c in by], copy=False))

        # T and F: partials per tile, and per tile the whole tiles of its frame.
        t_name = grouped([*keys, tile])
        f_name = self.add(exp.select(
            *[col(key) for key in keys], col(tile),
            *[
                exp.alias_(
                    _window(combine(name("p", p), partial), keys, tile, "RANGE", (w - h, "PRECEDING"), (h, "PRECEDING")),
                    ident(name("full", p)), copy=False,
                )
                for (_, partial), p in partials.items()
            ],
        ).from_(ident(t_name), copy=False))
        # G and X: partials per time, and each time's suffix of its tile (ROWS over
        # distinct times: exactly the rows at or after it).
        g_name = grouped([*keys, US, tile])
        x_name = self.add(exp.select(
            *[col(key) for key in keys], col(US), col(tile),
            *[
                exp.alias_(_window(combine(name("p", p), partial), [*keys, tile], US, "ROWS", "CURRENT ROW", "UNBOUNDED FOLLOWING"),
                           ident(name("suf", p)), copy=False)
                for (_, partial), p in partials.items()
            ],
        ).from_(ident(g_name), copy=False))

        x, f = f"x{g}", f"f{g}"
        # The head: the suffix at the first time of tile T - w after t - w (none: empty).
        head_on = all_of([
            *[exp.EQ(this=col(key, "i"), expression=col(key, x)) for key in keys],
            exp.EQ(this=exp.Sub(this=col(tile, "i"), expression=lit(w)), expression=col(tile, x)),
            exp.LT(this=exp.Sub(this=col(US, "i"), expression=lit(w)), expression=col(US, x)),
        ])
        full_on = all_of([
            *[exp.EQ(this=col(key, "i"), expression=col(key, f)) for key in keys],
            exp.EQ(this=col(tile, "i"), expression=col(tile, f)),
        ])

        def value_of(a: AggCall, partial: str) -> exp.Expression:
            """``partial`` of ``a``'s argument over the whole frame: tail + full tiles + head."""
            p = partials[(args[(a.arg, a.filter)], partial)]
            tail, full, head = col(name("pre", p), "i"), col(name("full", p), f), col(name("suf", p), x)
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
            empty = all_of([exp.Is(this=c.copy(), expression=exp.Null()) for c in (tail, full, head)])
            return exp.Case().when(empty, exp.Null(), copy=False).else_(total, copy=False)  # a sum: NULL when empty

        values: dict[str, exp.Expression] = {}
        for a in aggs:
            if a.func == "mean":
                values[a.name] = exp.Div(
                    this=low.cast(value_of(a, "sum"), a.dtype),
                    expression=exp.Nullif(this=value_of(a, "count"), expression=lit(0)),
                )
            else:
                values[a.name] = value_of(a, a.func)
        joins = [(x_name, x, "asof left", head_on), (f_name, f, "left", full_on)]
        return tails, values, joins
