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
    P  per distinct (key, t): prefix and suffix within its tile  (windows over E)
    R  per (key, t): prefix + full + the head, the suffix at the first row of
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

US, TILE, HUS, HTILE = "__rp_us", "__rp_tile", "__rp_hus", "__rp_htile"

# Per aggregate: the partials it needs, each as (name suffix, aggregate over rows, how parts combine).
_PARTIALS = {
    "count": (("n", exp.Count, "add"),),
    "sum": (("s", exp.Sum, "add"),),
    "min": (("m", exp.Min, "least"),),
    "max": (("m", exp.Max, "greatest"),),
    "mean": (("s", exp.Sum, "add"), ("n", exp.Count, "add")),
}
# How the partials of the parts combine: a partial aggregate over the partials.
_OVER_PARTIALS = {"add": exp.Sum, "least": exp.Min, "greatest": exp.Max}


def _and(*conds: exp.Expression) -> exp.Expression:
    out = conds[0]
    for c in conds[1:]:
        out = exp.And(this=out, expression=c)
    return out


def _window(e: exp.Expression, partition: list[str], order: str, start: object, end: object) -> exp.Window:
    def bound(b: object) -> tuple[exp.Expression | str, str | None]:
        if b == "CURRENT ROW":
            return "CURRENT ROW", None
        if b in ("UNBOUNDED PRECEDING", "UNBOUNDED FOLLOWING"):
            return "UNBOUNDED", str(b).split()[1]
        n, side = b  # type: ignore[misc]
        return lit(n), side

    (s, s_side), (e_, e_side) = bound(start), bound(end)
    spec = exp.WindowSpec(kind="RANGE", start=s, start_side=s_side, end=e_, end_side=e_side)
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

    def name(self) -> str:
        return f"t{self.k + len(self.out)}"

    def add(self, q: exp.Expression) -> str:
        name = self.name()
        self.out.append((name, q))
        return name

    def ctes(self) -> list[tuple[str, exp.Expression]]:
        n = self.n
        native = tuple((f, aggs) for f, aggs in n.windows if f.tile is None)
        rows = self.src
        if native:
            rows = self.add(self.low.window_aggregate(WindowAggregate(n.input, n.keys, n.order, native), self.src))
        values: dict[str, exp.Expression] = {}  # column -> value (in the final SELECT)
        joins: list[tuple[str, str]] = []  # (R CTE, alias)
        for g, (frame, aggs) in enumerate((f, a) for f, a in n.windows if f.tile is not None):
            alias = f"r{g}"
            joins.append((self.tiled_frame(frame, aggs), alias))
            for j, a in enumerate(aggs):
                values[a.name] = exp.alias_(self.low.cast(col(f"__rp_v{j}", alias), a.dtype), ident(a.name), copy=False)
        cols: list[exp.Expression] = [col(f.name, "i") for f in n.input.schema]
        for _, a in n.calls:
            cols.append(values.get(a.name) or col(a.name, "i"))
        q = exp.select(*cols).from_(exp.Table(this=ident(rows)).as_(ident("i")), copy=False)
        for r, alias in joins:
            on = _and(
                *[exp.EQ(this=col(key, "i"), expression=col(key, alias)) for key in n.keys],
                exp.EQ(this=self.low.epoch_us(col(n.order, "i")), expression=col(US, alias)),
            )
            q = q.join(exp.Table(this=ident(r)).as_(ident(alias)), on=on, join_type="left", copy=False)
        self.add(q)
        return self.out

    def masked_args(self, aggs: tuple[AggCall, ...]) -> list[exp.Expression]:
        """Each aggregate's argument with its filter folded in (NULL where filtered out)."""
        out = []
        for a in aggs:
            value = self.low.expr(a.arg) if a.arg is not None else lit(1)
            if a.filter is not None:
                value = exp.Case().when(self.low.expr(a.filter), value, copy=False)
            out.append(value)
        return out

    def tiled_frame(self, frame: Frame, aggs: tuple[AggCall, ...]) -> str:
        """CTEs E, T, F, P, R of one tiled frame; returns R's name."""
        n, low = self.n, self.low
        w, h = frame.lower, frame.tile
        assert w is not None and h is not None
        keys = list(n.keys)
        us = low.epoch_us(col(n.order))
        rows = exp.select(
            *[col(key) for key in keys],
            exp.alias_(us, ident(US), copy=False),
            exp.alias_(exp.Sub(this=us.copy(), expression=low.pymod(us.copy(), lit(h))), ident(TILE), copy=False),
            *[exp.alias_(v, ident(f"__rp_a{j}"), copy=False) for j, v in enumerate(self.masked_args(aggs))],
        ).from_(ident(self.src), copy=False)
        if keys:
            rows = rows.where(low.keys_present(n.keys), copy=False)
        e_name = self.add(rows)

        parts = [(j, a, suffix, fn, how) for j, a in enumerate(aggs) for suffix, fn, how in _PARTIALS[a.func]]

        def pname(prefix: str, j: int, suffix: str) -> str:
            return f"__rp_{prefix}{suffix}{j}"

        tiles = exp.select(
            *[col(key) for key in keys], col(TILE),
            *[exp.alias_(fn(this=col(f"__rp_a{j}")), ident(pname("t", j, sfx)), copy=False) for j, _, sfx, fn, _ in parts],
        ).from_(ident(e_name), copy=False).group_by(*[col(key) for key in keys], col(TILE), copy=False)
        t_name = self.add(tiles)

        full = exp.select(
            *[col(key) for key in keys], col(TILE),
            *[
                exp.alias_(
                    _window(_OVER_PARTIALS[how](this=col(pname("t", j, sfx))), keys, TILE, (w - h, "PRECEDING"), (h, "PRECEDING")),
                    ident(pname("f", j, sfx)), copy=False,
                )
                for j, _, sfx, _, how in parts
            ],
        ).from_(ident(t_name), copy=False)
        f_name = self.add(full)

        within = [*keys, TILE]
        edges = exp.select(
            *[col(key) for key in keys], col(US), col(TILE),
            exp.alias_(exp.Sub(this=col(US), expression=lit(w)), ident(HUS), copy=False),
            exp.alias_(exp.Sub(this=col(TILE), expression=lit(w)), ident(HTILE), copy=False),
            *[
                exp.alias_(_window(fn(this=col(f"__rp_a{j}")), within, US, "UNBOUNDED PRECEDING", "CURRENT ROW"),
                           ident(pname("p", j, sfx)), copy=False)
                for j, _, sfx, fn, _ in parts
            ],
            *[
                exp.alias_(_window(fn(this=col(f"__rp_a{j}")), within, US, "CURRENT ROW", "UNBOUNDED FOLLOWING"),
                           ident(pname("x", j, sfx)), copy=False)
                for j, _, sfx, fn, _ in parts
            ],
        ).from_(ident(e_name), copy=False).distinct(copy=False)
        p_name = self.add(edges)

        # The head: the suffix at the first row of tile T - w after t - w (none: empty head).
        head_on = _and(
            *[exp.EQ(this=col(key, "p"), expression=col(key, "h")) for key in keys],
            exp.EQ(this=col(HTILE, "p"), expression=col(TILE, "h")),
            exp.LT(this=col(HUS, "p"), expression=col(US, "h")),
        )
        full_on = _and(
            *[exp.EQ(this=col(key, "p"), expression=col(key, "f")) for key in keys],
            exp.EQ(this=col(TILE, "p"), expression=col(TILE, "f")),
        )

        def combined(j: int, sfx: str, how: str) -> exp.Expression:
            p, f, x = col(pname("p", j, sfx), "p"), col(pname("f", j, sfx), "f"), col(pname("x", j, sfx), "h")
            # ignore_nulls: DuckDB's LEAST/GREATEST skip NULLs (an empty part); sqlglot
            # would otherwise wrap them in a CASE that makes any empty part NULL.
            if how == "least":
                return exp.Least(this=p, expressions=[f, x], ignore_nulls=True)
            if how == "greatest":
                return exp.Greatest(this=p, expressions=[f, x], ignore_nulls=True)
            total = exp.Add(
                this=exp.Add(this=exp.Coalesce(this=p, expressions=[lit(0)]), expression=exp.Coalesce(this=f, expressions=[lit(0)])),
                expression=exp.Coalesce(this=x, expressions=[lit(0)]),
            )
            if sfx == "n":
                return total  # a count: 0 when every part is empty
            none = _and(*[exp.Is(this=c.copy(), expression=exp.Null()) for c in (p, f, x)])
            return exp.Case().when(none, exp.Null(), copy=False).else_(total, copy=False)  # a sum: NULL when empty

        values = []
        for j, a in enumerate(aggs):
            if a.func == "mean":
                total, count = combined(j, "s", "add"), combined(j, "n", "add")
                value: exp.Expression = exp.Div(
                    this=low.cast(total, a.dtype), expression=exp.Nullif(this=count, expression=lit(0))
                )
            else:
                ((sfx, _, how),) = _PARTIALS[a.func]
                value = combined(j, sfx, how)
            values.append(exp.alias_(value, ident(f"__rp_v{j}"), copy=False))
        result = (
            exp.select(*[col(key, "p") for key in keys], col(US, "p"), *values)
            .from_(exp.Table(this=ident(p_name)).as_(ident("p")), copy=False)
            .join(exp.Table(this=ident(p_name)).as_(ident("h")), on=head_on, join_type="asof left", copy=False)
            .join(exp.Table(this=ident(f_name)).as_(ident("f")), on=full_on, join_type="left", copy=False)
        )
        return self.add(result)
