"""Hypothesis strategies for enrichment joins and derived features, with a brute-force oracle.

Four sources (the talk's shapes, small): ``Tx`` events (the left side), ``Dim``
versions of a merchant (``merge_asof``), ``Look`` a static lookup table with one row
per key (``merge``), and ``Ev`` a second event stream (``merge(within=...)``).
A ``JoinCase`` is plain data: one join (kind, how, masks before it on either side,
tolerance / exact matches / interval bounds), 1-3 per-event features over its rows
(keys from either side, a mask after the merge, every aggregate kind, sliding and
lifetime windows), and derived features over two of them (ratios whose denominators
are often 0, coalesce, where, fillna, a comparison, a request field). It builds the
relplan features through the DSL, as a user writes them, and computes the expected
rows from the documented definitions alone (compiler/joins.py's docstring, DESIGN.md
"What a feature means"), never from relplan's IR or SQL:

- merge_asof: per dimension column, the newest non-NULL value among the key's versions
  at or before the row's time (strictly before without exact matches; no older than
  the tolerance, inclusive), ties on time settled by the largest value; ``vt`` the
  newest matching version's time; ``how="inner"`` keeps rows with a matching version;
- merge (lookup): the key's one row, or NULLs (left) / no row (inner);
- merge(within=(before, after)): one row per right row of the key whose time lies in
  ``[t - before, t + after]`` (both inclusive), or one NULL-padded row (left);
- then tests/reference.py's ``per_event`` over the joined rows, with the mask after
  the merge as the feature's filter and Tx's ``ts`` as the event time.

The data aims at the edges: few keys with NULLs on both sides, times on a grid of 30 s
(+-1 unit) so that versions, interval bounds and window edges are hit exactly and
missed by one unit, versions before, at and after events, versions tied on time, NULL
values in newer versions, lookup keys missing on either side. Sums stay exact in
binary floating point (small ints, dyadic floats), as in tests/strategies.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

import relplan as rp
import reference as ref

SECOND = 1_000_000
STEP = 30 * SECOND
UTC = dt.timezone.utc
Row = dict[str, Any]


class Tx(rp.Source):
    """The left events: a card ``k``, a merchant ``m``, an int, a float, a string."""

    k: rp.Int64
    m: rp.Int64
    v: rp.Int64
    x: rp.Float64
    s: rp.String
    ts: rp.Timestamp = rp.event_time()


class Dim(rp.Source):
    """Versions of a merchant's record: each row holds from ``vt`` on."""

    m: rp.Int64
    cat: rp.String
    r: rp.Int64
    vt: rp.Timestamp = rp.event_time()


class Look(rp.Source):
    """A static lookup table: one row per merchant (NULL keys may repeat)."""

    m: rp.Int64
    region: rp.String
    w: rp.Int64


class Ev(rp.Source):
    """A second event stream by card: ``s`` clashes with Tx's and becomes ``s_right``."""

    k: rp.Int64
    y: rp.Int64
    s: rp.String
    et: rp.Timestamp = rp.event_time()


class Req(rp.Request):
    """What arrives with the request: in a batch plan, the event's own columns."""

    x: rp.Float64


SOURCES = {"Tx": Tx, "Dim": Dim, "Look": Look, "Ev": Ev}
TYPES = {
    "Tx": {"k": "Int64", "m": "Int64", "v": "Int64", "x": "Float64", "s": "String", "ts": "Timestamp"},
    "Dim": {"m": "Int64", "cat": "String", "r": "Int64", "vt": "Timestamp"},
    "Look": {"m": "Int64", "region": "String", "w": "Int64"},
    "Ev": {"k": "Int64", "y": "Int64", "s": "String", "et": "Timestamp"},
}
RIGHT = {"asof": "Dim", "lookup": "Look", "interval": "Ev"}
# The joined rows' columns added by each join (the key appears once, the left's).
ADDED = {
    "asof": (("cat", "String"), ("r", "Int64"), ("vt", "Timestamp")),
    "lookup": (("region", "String"), ("w", "Int64")),
    "interval": (("y", "Int64"), ("s_right", "String"), ("et", "Timestamp")),
}
# Generic names the feature specs use for the right side's columns, per join kind:
# RI an int, RS a string, RT a timestamp (lookup has none: Tx's ts stands in).
ROLE = {
    "asof": {"RI": "r", "RS": "cat", "RT": "vt"},
    "lookup": {"RI": "w", "RS": "region", "RT": "ts"},
    "interval": {"RI": "y", "RS": "s_right", "RT": "et"},
}
RAW_RIGHT = {"asof": {"RI": "r", "RS": "cat"}, "lookup": {"RI": "w", "RS": "region"}, "interval": {"RI": "y", "RS": "s"}}


def to_table(name: str, rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SOURCES[name].to_arrow_schema())


def joined_types(kind: str) -> dict[str, str]:
    return {**TYPES["Tx"], **dict(ADDED[kind])}


# ---- data -------------------------------------------------------------------------------

BASES_US = (0, -86_400 * SECOND, ref.to_us(dt.datetime(2024, 1, 1, tzinfo=UTC)))
STRINGS = ("a", "b", "", "é", "'")
keys_ = st.one_of(st.none(), st.sampled_from((1, 2)), st.just(3))
small_ints = st.integers(-3, 3)
floats = st.one_of(st.integers(-16, 16).map(lambda i: i / 4), st.sampled_from((0.0, -0.0, 0.5)))


@dataclass(frozen=True)
class Data:
    """One example's tables as rows; times are tz-aware UTC datetimes."""

    tx: list[Row]
    dim: list[Row]
    look: list[Row]
    ev: list[Row]

    def tables(self) -> dict[str, pa.Table]:
        return {"Tx": to_table("Tx", self.tx), "Dim": to_table("Dim", self.dim),
                "Look": to_table("Look", self.look), "Ev": to_table("Ev", self.ev)}

    def in_time_order(self) -> Data:
        """The rows as a stream delivers them in order (a file's order is its arrival order)."""
        return Data(sorted(self.tx, key=lambda r: r["ts"]), sorted(self.dim, key=lambda r: r["vt"]),
                    self.look, sorted(self.ev, key=lambda r: r["et"]))

    def __repr__(self) -> str:
        def show(rows: list[Row]) -> str:
            return "".join(f"\n    {r}" for r in rows)
        return f"Data(tx={show(self.tx)}\n  dim={show(self.dim)}\n  look={show(self.look)}\n  ev={show(self.ev)})"


@st.composite
def data(draw: st.DrawFn, max_rows: int = 10, unit_us: int = 1, bases: tuple[int, ...] = BASES_US) -> Data:
    """Tables for every source; times in whole ``unit_us`` (Flink streaming: 1000)."""
    base = draw(st.sampled_from(bases))
    null_rate = draw(st.sampled_from((0, 15, 40)))

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return None if null_rate and draw(st.integers(0, 99)) < null_rate else draw(strategy)

    def at(lo: int, hi: int) -> dt.datetime:
        step = draw(st.integers(lo, hi))
        return ref.from_us(base + step * STEP + draw(st.sampled_from((0, 0, 0, -1, 1))) * unit_us)

    tx = [
        {"k": draw(keys_), "m": draw(keys_), "v": maybe(small_ints), "x": maybe(floats),
         "s": maybe(st.sampled_from(STRINGS)), "ts": at(0, 5)}
        for _ in range(draw(st.integers(0, max_rows)))
    ]
    if tx and draw(st.booleans()):  # exact duplicates: same key, same time
        tx += [dict(r) for r in draw(st.lists(st.sampled_from(tx), max_size=2))]
    # Versions before, at and after the events; now and then one tied with another on
    # key and time, or a newer one whose values are NULL.
    dim = [
        {"m": draw(keys_), "cat": maybe(st.sampled_from(STRINGS[:3])), "r": maybe(small_ints), "vt": at(-3, 6)}
        for _ in range(draw(st.integers(0, max_rows)))
    ]
    for r in draw(st.lists(st.sampled_from(dim), max_size=2)) if dim else []:
        dim.append({**r, "cat": maybe(st.sampled_from(STRINGS[:3])), "r": maybe(small_ints)})  # tied on time
    for r in draw(st.lists(st.sampled_from(dim), max_size=2)) if dim else []:
        dim.append({**r, "cat": None, "r": None, "vt": r["vt"] + dt.timedelta(microseconds=STEP)})  # newer, NULL
    look_keys = draw(st.lists(st.sampled_from((1, 2, 3)), unique=True, max_size=3))
    look_keys += draw(st.lists(st.none(), max_size=2))  # NULL keys match nothing, so may repeat
    look = [{"m": m, "region": maybe(st.sampled_from(STRINGS[:3])), "w": maybe(small_ints)} for m in look_keys]
    ev = [
        {"k": draw(keys_), "y": maybe(small_ints), "s": maybe(st.sampled_from(STRINGS)), "et": at(-3, 7)}
        for _ in range(draw(st.integers(0, max_rows)))
    ]
    return Data(tx, dim, look, ev)


# ---- masks, keys, aggregates ------------------------------------------------------------

Pred = Callable[[Row], "bool | None"]
# (DSL over a frame, reference predicate); names of the right side's roles resolved per join.
LEFT_MASKS: dict[str, tuple[Callable[[Any], Any], Pred] | None] = {
    "none": None,
    "v_pos": (lambda f: f.v > 0, lambda r: ref.cmp3(">", r["v"], 0)),
    "s_notnull": (lambda f: f.s.notnull(), lambda r: r["s"] is not None),
    "k_not_1": (lambda f: f.k != 1, lambda r: ref.cmp3("!=", r["k"], 1)),
}


def right_mask(name: str, kind: str) -> tuple[Callable[[Any], Any], Pred] | None:
    """A mask over the right frame before the merge (which versions/rows exist)."""
    ri, rs = RAW_RIGHT[kind]["RI"], RAW_RIGHT[kind]["RS"]
    if name == "none":
        return None
    if name == "int_pos":
        return (lambda f: f[ri] > 0, lambda r: ref.cmp3(">", r[ri], 0))
    if name == "str_notnull":
        return (lambda f: f[rs].notnull(), lambda r: r[rs] is not None)
    raise ValueError(name)


RIGHT_MASKS = ("none", "int_pos", "str_notnull")


def post_mask(name: str, kind: str) -> tuple[Callable[[Any], Any], Pred] | None:
    """A mask over the merged frame (what the aggregate counts), reading either side."""
    ri, rs = ROLE[kind]["RI"], ROLE[kind]["RS"]
    if name == "none":
        return None
    if name == "ri_pos":
        return (lambda f: f[ri] > 0, lambda r: ref.cmp3(">", r[ri], 0))
    if name == "rs_null":  # the rows a left join padded (or whose value is NULL)
        return (lambda f: f[rs].isnull(), lambda r: r[rs] is None)
    if name == "v_or_ri_neg":
        return (lambda f: (f.v > 0) | (f[ri] < 0), lambda r: ref.or3(ref.cmp3(">", r["v"], 0), ref.cmp3("<", r[ri], 0)))
    if name == "rs_isin":
        return (lambda f: f[rs].isin(["a", "b"]), lambda r: ref.isin3(r[rs], ("a", "b")))
    raise ValueError(name)


POST_MASKS = ("none", "ri_pos", "rs_null", "v_or_ri_neg", "rs_isin")
KEYS = (("k",), ("m",), ("RS",), ("k", "RS"), ("RI",))
COLUMNS_FOR: dict[str, tuple[str | None, ...]] = {
    "count": (None, "v", "RI", "RS"),
    "count_distinct": ("v", "x", "RI", "RS"),
    "sum": ("v", "x", "RI"),
    "mean": ("v", "x", "RI"),
    "var": ("v", "x", "RI"),
    "std": ("v", "RI"),
    "min": ("v", "x", "RS", "RT"),
    "max": ("v", "RI", "RS", "RT"),
    "first": ("v", "x", "RI", "RS"),
    "last": ("v", "RI", "RS", "x"),
}
SLIDING = ("30s", "1m", "2m")
WITHIN: tuple[Any, ...] = ("1m", ("1m", "30s"), ("0s", "1m"), ("30s", "0s"))
TOLERANCE = (None, None, "30s", "2m")


def resolve(name: str | None, kind: str) -> str | None:
    return None if name is None else ROLE[kind].get(name, name)


# ---- the specs --------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinSpec:
    """One merge of Tx with another source: what becomes the features' rows."""

    kind: str  # "asof" | "lookup" | "interval"
    how: str  # "inner" | "left"
    left_mask: str = "none"
    right_mask: str = "none"
    tolerance: str | None = None  # asof
    exact: bool = True  # asof: allow_exact_matches
    within: Any = "1m"  # interval

    @property
    def right(self) -> str:
        return RIGHT[self.kind]

    def frame(self, tx: Any, other: Any) -> Any:
        """The merged frame, written with the DSL."""
        lm, rm = LEFT_MASKS[self.left_mask], right_mask(self.right_mask, self.kind)
        left = tx if lm is None else tx[lm[0](tx)]
        right = other if rm is None else other[rm[0](other)]
        if self.kind == "asof":
            return left.merge_asof(right, by="m", how=self.how, tolerance=self.tolerance, allow_exact_matches=self.exact)
        if self.kind == "lookup":
            return left.merge(right, on="m", how=self.how)
        return left.merge(right, on="k", how=self.how, within=self.within)

    def rows(self, d: Data) -> list[Row]:
        """The joined rows, from the definitions (see the module docstring)."""
        lm, rm = LEFT_MASKS[self.left_mask], right_mask(self.right_mask, self.kind)
        left = [r for r in ref.normalize(d.tx) if lm is None or lm[1](r) is True]
        right_rows = {"asof": d.dim, "lookup": d.look, "interval": d.ev}[self.kind]
        right = [r for r in ref.normalize(right_rows) if rm is None or rm[1](r) is True]
        out: list[Row] = []
        for row in left:
            t = ref.to_us(row["ts"])
            if self.kind == "asof":
                lower = None if self.tolerance is None else t - rp.sliding(self.tolerance).size  # type: ignore[operator]
                vs = [
                    v for v in right
                    if row["m"] is not None and v["m"] == row["m"]
                    and (ref.to_us(v["vt"]) <= t if self.exact else ref.to_us(v["vt"]) < t)
                    and (lower is None or ref.to_us(v["vt"]) >= lower)
                ]
                if not vs and self.how == "inner":
                    continue
                added = {c: ref.aggregate("last", vs, ref.col(c), "vt") for c in ("cat", "r", "vt")}
                out.append({**row, **added})
            elif self.kind == "lookup":
                match = [x for x in right if row["m"] is not None and x["m"] == row["m"]]
                assert len(match) <= 1
                if match:
                    out.append({**row, "region": match[0]["region"], "w": match[0]["w"]})
                elif self.how == "left":
                    out.append({**row, "region": None, "w": None})
            else:
                before, after = _bounds(self.within)
                match = [
                    e for e in right
                    if row["k"] is not None and e["k"] == row["k"] and t - before <= ref.to_us(e["et"]) <= t + after
                ]
                out += [{**row, "y": e["y"], "s_right": e["s"], "et": e["et"]} for e in match]
                if not match and self.how == "left":
                    out.append({**row, "y": None, "s_right": None, "et": None})
        return out


def _bounds(within: Any) -> tuple[int, int]:
    def us(d: str) -> int:
        return 0 if d == "0s" else rp.sliding(d).size  # type: ignore[return-value]
    return (us(within[0]), us(within[1])) if isinstance(within, tuple) else (us(within), 0)


@dataclass(frozen=True)
class AggSpec:
    """One per-event feature over a join's rows."""

    keys: tuple[str, ...]  # role names (RS, RI) or Tx columns
    mask: str  # after the merge
    window: str  # a SLIDING size, "lifetime", or "tumbling:<size>" (no oracle: differential tests only)
    func: str
    column: str | None  # role name or Tx column; None: count rows

    def wspec(self) -> rp.WindowSpec:
        if self.window.startswith("tumbling:"):  # per window: the differential tests only (no oracle)
            return rp.tumbling(self.window.split(":")[1])
        return rp.lifetime() if self.window == "lifetime" else rp.sliding(self.window)

    @property
    def per_event(self) -> bool:
        return not self.window.startswith("tumbling:")

    def result_type(self, kind: str) -> str:
        col = resolve(self.column, kind)
        return ref.result_type(self.func, None if col is None else joined_types(kind)[col])

    def body(self, joined: Any, kind: str, wspec: rp.WindowSpec) -> Any:
        pm = post_mask(self.mask, kind)
        frame = joined if pm is None else joined[pm[0](joined)]
        keys = [resolve(k, kind) for k in self.keys]
        g = frame.groupby(keys if len(keys) > 1 else keys[0])
        col = resolve(self.column, kind)
        g = g[col].window(wspec) if col is not None else g.window(wspec)
        return getattr(g, self.func)()

    def reference(self, rows: list[Row], kind: str, name: str) -> list[Row]:
        keys = {k: ref.col(k) for k in (resolve(k, kind) for k in self.keys)}  # type: ignore[misc]
        pm = post_mask(self.mask, kind)
        col = resolve(self.column, kind)
        agg = ref.Agg(name, self.func, None if col is None else ref.col(col))
        size = None if self.window == "lifetime" else self.wspec().size
        return ref.per_event(rows, keys=keys, mask=pm and pm[1], aggs=[agg], size_us=size, time="ts")


DERIVED_KINDS = ("ratio", "where", "coalesce", "fillna_sum", "request", "gt")


@dataclass(frozen=True)
class DerivedSpec:
    """A derived feature over features ``a`` and ``b`` (indices into the case's features)."""

    kind: str
    a: int
    b: int

    def build(self, name: str, fa: Any, fb: Any) -> rp.DerivedFeature:
        expr = {
            "ratio": lambda: fa / fb,
            "where": lambda: rp.where(fb > 0, fa / fb, -1.0),
            "coalesce": lambda: rp.coalesce(fa, fb),
            "fillna_sum": lambda: fa.fillna(0) + fb.fillna(0),
            "request": lambda: Req.x / fa,
            "gt": lambda: fa > fb,
        }[self.kind]()
        return rp.derived(name, expr)

    def result_type(self, ta: str, tb: str) -> str:
        if self.kind in ("ratio", "where", "request"):
            return "Float64"
        if self.kind == "gt":
            return "Bool"
        return "Float64" if "Float64" in (ta, tb) else "Int64"

    def value(self, row: Row, a: Any, b: Any, typ: str) -> Any:
        if self.kind == "ratio":
            out = ref.truediv(a, b)
        elif self.kind == "where":
            out = ref.truediv(a, b) if ref.cmp3(">", b, 0) is True else -1.0
        elif self.kind == "coalesce":
            out = a if a is not None else b
        elif self.kind == "fillna_sum":
            out = (0 if a is None else a) + (0 if b is None else b)
        elif self.kind == "request":
            out = ref.truediv(row["x"], a)
        else:
            out = ref.cmp3(">", a, b)
        return float(out) if typ == "Float64" and out is not None else out


@dataclass(frozen=True)
class JoinCase:
    """A join, the features over its rows and derived features over two of them."""

    join: JoinSpec
    aggs: tuple[AggSpec, ...]
    derived: tuple[DerivedSpec, ...] = ()

    def names(self, prefix: str) -> list[str]:
        return [f"{prefix}{i}" for i in range(len(self.aggs))]

    def features(self, prefix: str) -> list[Any]:
        """The features (named ``<prefix>0``, ...) and then the derived ones (``<prefix>d0``, ...)."""
        feats = [_feature(self.join, a, n) for a, n in zip(self.aggs, self.names(prefix))]
        derived = [d.build(f"{prefix}d{i}", feats[d.a], feats[d.b]) for i, d in enumerate(self.derived)]
        return [*feats, *derived]

    def types(self, prefix: str) -> dict[str, str]:
        kind = self.join.kind
        out = {n: a.result_type(kind) for n, a in zip(self.names(prefix), self.aggs)}
        ts = list(out.values())
        for i, d in enumerate(self.derived):
            out[f"{prefix}d{i}"] = d.result_type(ts[d.a], ts[d.b])
        return out

    def values(self, rows: list[Row], prefix: str) -> list[Row]:
        """Per joined row (aligned with ``rows``) the features' and derived features' values."""
        kind = self.join.kind
        cols = [a.reference(rows, kind, n) for a, n in zip(self.aggs, self.names(prefix))]
        types = self.types(prefix)
        out = []
        for i, row in enumerate(rows):
            vals: Row = {}
            for c in cols:
                vals.update(c[i])
            fs = list(vals.values())
            for j, d in enumerate(self.derived):
                name = f"{prefix}d{j}"
                vals[name] = d.value(row, fs[d.a], fs[d.b], types[name])
            out.append(vals)
        return out


def _feature(join: JoinSpec, agg: AggSpec, name: str) -> rp.Feature:
    # One transformation per right source, so that its parameters are typed as users type them.
    if join.kind == "asof":
        def body(tx: Tx, dim: Dim, wspec: rp.WindowSpec) -> Any:
            return agg.body(join.frame(tx, dim), join.kind, wspec)
    elif join.kind == "lookup":
        def body(tx: Tx, look: Look, wspec: rp.WindowSpec) -> Any:  # type: ignore[misc]
            return agg.body(join.frame(tx, look), join.kind, wspec)
    else:
        def body(tx: Tx, ev: Ev, wspec: rp.WindowSpec) -> Any:  # type: ignore[misc]
            return agg.body(join.frame(tx, ev), join.kind, wspec)
    return rp.transformation(body, name="t")(window=agg.wspec(), name=name)


NUMERIC = ("Int64", "Float64")


@st.composite
def join_specs(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("asof", "lookup", "interval"), exact: tuple[bool, ...] = (True, False)
) -> JoinSpec:
    kind = draw(st.sampled_from(kinds))
    return JoinSpec(
        kind,
        draw(st.sampled_from(("inner", "left"))),
        draw(st.sampled_from(tuple(LEFT_MASKS))),
        draw(st.sampled_from(RIGHT_MASKS)),
        draw(st.sampled_from(TOLERANCE)) if kind == "asof" else None,
        draw(st.sampled_from(exact)) if kind == "asof" else True,
        draw(st.sampled_from(WITHIN)) if kind == "interval" else "1m",
    )


@st.composite
def agg_specs(draw: st.DrawFn, windows: tuple[str, ...] = (*SLIDING, "lifetime")) -> AggSpec:
    func = draw(st.sampled_from(tuple(COLUMNS_FOR)))
    return AggSpec(
        draw(st.sampled_from(KEYS)), draw(st.sampled_from(POST_MASKS)), draw(st.sampled_from(windows)),
        func, draw(st.sampled_from(COLUMNS_FOR[func])),
    )


@st.composite
def join_cases(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("asof", "lookup", "interval"), max_aggs: int = 3,
    windows: tuple[str, ...] = (*SLIDING, "lifetime"), derived: bool = True, exact: tuple[bool, ...] = (True, False),
) -> JoinCase:
    """``exact``: the allow_exact_matches values merge_asof may take (Flink streaming: True only)."""
    join = draw(join_specs(kinds, exact))
    aggs = tuple(draw(st.lists(agg_specs(windows), min_size=1, max_size=max_aggs)))
    numeric = [i for i, a in enumerate(aggs) if a.per_event and a.result_type(join.kind) in NUMERIC]
    ds: list[DerivedSpec] = []
    if derived and numeric:
        for _ in range(draw(st.integers(0, 2))):
            ds.append(DerivedSpec(draw(st.sampled_from(DERIVED_KINDS)), draw(st.sampled_from(numeric)), draw(st.sampled_from(numeric))))
    return JoinCase(join, aggs, tuple(ds))


# ---- running and checking -----------------------------------------------------------------

Runner = Callable[[rp.Plan, dict[str, pa.Table]], dict[str, pa.Table]]
ARROW = {"Int64": pa.int64(), "Float64": pa.float64(), "String": pa.string(), "Bool": pa.bool_(),
         "Timestamp": pa.timestamp("us", tz="UTC")}


def compile_cases(cases: list[JoinCase]) -> rp.Plan:
    feats = [f for i, c in enumerate(cases) for f in c.features(f"c{i}_")]
    plain = [f for f in feats if isinstance(f, rp.Feature)]
    return rp.compile([*plain, *(f for f in feats if not isinstance(f, rp.Feature))])


def expected_outputs(cases: list[JoinCase], d: Data) -> list[tuple[list[str], dict[str, str], list[Row]]]:
    """Per output (one per distinct join): its columns in order, their types and its rows."""
    groups: dict[JoinSpec, list[tuple[int, JoinCase]]] = {}
    for i, c in enumerate(cases):
        groups.setdefault(c.join, []).append((i, c))
    outs = []
    for join, members in groups.items():
        rows = join.rows(d)
        types = joined_types(join.kind)
        feature_types: dict[str, str] = {}
        derived_types: dict[str, str] = {}
        values = [dict() for _ in rows]  # type: list[Row]
        for i, c in members:
            for n, t in c.types(f"c{i}_").items():
                (derived_types if "_d" in n else feature_types)[n] = t
            for v, extra in zip(values, c.values(rows, f"c{i}_")):
                v.update(extra)
        types = {**types, **feature_types, **derived_types}
        outs.append((list(types), types, [{**r, **v} for r, v in zip(rows, values)]))
    return outs


def check_cases(cases: list[JoinCase], d: Data, run: Runner, plan: rp.Plan | None = None) -> None:
    """Compile the cases into one plan, run it, and compare every output with the oracle:
    columns in order with their types, and the rows (order ignored, floats within
    tests/reference.py's tolerance)."""
    plan = compile_cases(cases) if plan is None else plan
    got = run(plan, d.tables())
    expected = expected_outputs(cases, d)
    assert len(got) == len(expected), f"{len(got)} outputs {list(got)}, expected {len(expected)}"
    unmatched = dict(got)
    for columns, types, rows in expected:
        name = next((n for n, t in unmatched.items() if t.column_names == columns), None)
        assert name is not None, f"no output has the columns {columns}; outputs: {[t.column_names for t in got.values()]}"
        table = unmatched.pop(name)
        schema = pa.schema([(c, ARROW[t]) for c, t in types.items()])
        assert table.schema.equals(schema), f"output {name!r}:\n{table.schema}\nexpected\n{schema}"
        sort_by = [c for c in columns if c in joined_types("asof") or c in joined_types("lookup") or c in joined_types("interval")]
        ref.assert_same_rows(table.to_pylist(), rows, sort_by)


# ---- hand-picked edges (whole milliseconds, so Flink streaming takes them too) -------------


def edge_data() -> Data:
    """Every edge at least once: a version at exactly an event's time and one tied with it,
    a newer version with NULL values, a version only after a key's events and one 1 ms
    before an event, NULL keys on every side, a lookup key missing on either side, interval
    rows exactly on both bounds and 1 ms outside."""
    t = dt.datetime(2024, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> dt.datetime:
        return t + dt.timedelta(milliseconds=round(seconds * 1000))

    tx = [
        {"k": 1, "m": 1, "v": 1, "x": 0.5, "s": "a", "ts": at(60)},
        {"k": 1, "m": 1, "v": -2, "x": 1.5, "s": None, "ts": at(120)},
        {"k": 2, "m": 2, "v": 3, "x": None, "s": "b", "ts": at(120)},
        {"k": None, "m": 3, "v": 0, "x": 2.0, "s": "", "ts": at(90)},
        {"k": 2, "m": None, "v": 1, "x": -1.0, "s": "é", "ts": at(150)},
        {"k": 1, "m": 1, "v": 2, "x": 0.25, "s": "b", "ts": at(120)},  # tied with the second on key and time
    ]
    dim = [
        {"m": 1, "cat": "a", "r": 1, "vt": at(0)},
        {"m": 1, "cat": "b", "r": 2, "vt": at(60)},  # exactly at the first event
        {"m": 1, "cat": "", "r": -1, "vt": at(60)},  # tied with it: the larger value wins
        {"m": 1, "cat": None, "r": None, "vt": at(90)},  # newer, NULL: the older values stand
        {"m": 2, "cat": "a", "r": 3, "vt": at(150)},  # after every event of merchant 2
        {"m": 3, "cat": "b", "r": None, "vt": at(89.999)},  # 1 ms before merchant 3's event
        {"m": None, "cat": "a", "r": 0, "vt": at(0)},
    ]
    look = [{"m": 1, "region": "eu", "w": 1}, {"m": 3, "region": None, "w": 2},
            {"m": None, "region": "x", "w": 0}, {"m": None, "region": "y", "w": 5}]
    ev = [
        {"k": 1, "y": 1, "s": "a", "et": at(0)},  # exactly 1m before the first event
        {"k": 1, "y": 2, "s": "b", "et": at(-0.001)},  # 1 ms outside
        {"k": 1, "y": None, "s": None, "et": at(120)},  # exactly at the second event
        {"k": 2, "y": -1, "s": "a", "et": at(180)},  # exactly 30 s after merchant 2's event
        {"k": 2, "y": 4, "s": "a", "et": at(180.001)},  # 1 ms after that
        {"k": None, "y": 5, "s": "a", "et": at(60)},
    ]
    return Data(tx, dim, look, ev)


def edge_cases() -> list[JoinCase]:
    """Each join kind and how once, with keys from both sides, masks on both sides of
    the merge and derived features (a count as the denominator: often 0)."""
    return [
        JoinCase(JoinSpec("asof", "left"), (
            AggSpec(("RS",), "none", "1m", "count", None),
            AggSpec(("k",), "ri_pos", "lifetime", "sum", "RI"),
            AggSpec(("k", "RS"), "none", "lifetime", "last", "RS"),
        ), (DerivedSpec("ratio", 1, 0), DerivedSpec("where", 1, 0))),
        JoinCase(JoinSpec("asof", "inner", "v_pos", "int_pos", tolerance="30s", exact=False), (
            AggSpec(("m",), "none", "2m", "max", "RT"),
            AggSpec(("RI",), "none", "lifetime", "mean", "x"),
            AggSpec(("m",), "none", "lifetime", "count", "RI"),
        ), (DerivedSpec("coalesce", 1, 2),)),
        JoinCase(JoinSpec("lookup", "left", right_mask="str_notnull"), (
            AggSpec(("RS",), "rs_null", "lifetime", "count", None),
            AggSpec(("k",), "none", "1m", "count_distinct", "RI"),
        ), (DerivedSpec("request", 0, 1), DerivedSpec("fillna_sum", 0, 1))),
        JoinCase(JoinSpec("lookup", "inner"), (AggSpec(("m",), "none", "lifetime", "first", "v"),)),
        JoinCase(JoinSpec("interval", "left", within=("1m", "30s")), (
            AggSpec(("k",), "none", "2m", "count", "RI"),
            AggSpec(("RS",), "v_or_ri_neg", "lifetime", "var", "v"),
        ), (DerivedSpec("gt", 0, 1),)),
        JoinCase(JoinSpec("interval", "inner", "s_notnull", within="1m"), (
            AggSpec(("k", "RS"), "none", "1m", "std", "RI"),
            AggSpec(("k",), "none", "lifetime", "min", "RT"),
        )),
    ]


def streaming_edge_cases() -> list[JoinCase]:
    """The edges as Flink streaming takes them: merge_asof with exact matches only (a
    frame ending strictly before the row's time is refused there, backends/flink_joins.py)."""
    return [replace(c, join=replace(c.join, exact=True)) for c in edge_cases()]
