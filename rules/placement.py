"""Streaming-versus-batch placement: per feature, the alternatives with their
estimated cost, latency and correctness, and the one the knobs choose.

The alternatives (the triangle of the design):

- ``batch``: recomputed every ``schedule`` on a batch engine (DuckDB or Spark),
  after waiting for late events (the largest lateness known): exact and cheap,
  but a value is as old as the schedule plus that wait plus the run.
- ``streaming``: Flink with no allowed lateness: fresh and cheap; the events that
  arrive behind the newest one are dropped (``late_fraction(0)``).
- ``streaming_consistent``: Flink with a watermark ``allowed_lateness`` behind the
  newest event: the least lateness that meets ``max_missed`` (all of it for
  exact), so it holds the events of that lateness in state and its values wait
  for the watermark.
- ``hybrid``: a long sliding window from daily batch tiles and its current day
  from Flink (backends/hybrid.py): Flink holds one day, not the whole window, and
  a value misses only the late events of its current day that the stream
  dropped, until the next batch run recomputes that day exactly.

The three outputs, per alternative (rules/cost_model.py):

- cost: compute (core-hours a day) and state held (bytes), summed as
  ``compute + state_cost x GB`` (``Knobs.state_cost`` core-hours per GB a day);
- latency (freshness): how old a value can be when read, in seconds;
- correctness: the expected fraction of a value's events it misses; 0 is exact,
  None unknown (no lateness statistics for the lateness it would need).

The choice: the alternatives that break no hard limit of the knobs, ranked by the
priority (cost, latency or correctness first, then the other two), the first
taken; ``decided_by`` names the knob that ruled out the alternatives ranked
above it, or the priority when none was. Deterministic: equal inputs give equal
placements (ties are broken by the order of ALTERNATIVES).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relplan.ir.errors import OptimizerError, WindowError
from relplan.ir.graph import walk
from relplan.ir.nodes import AsOfJoin, Join, Sink, TimeWindowAggregate, WindowAggregate
from relplan.ir.printer import sources
from relplan.ir.windows import format_duration, parse_duration
from relplan.rules import cost_model
from relplan.rules.statistics import SourceStats, Statistics

if TYPE_CHECKING:
    from relplan.ir.dot import SVG

ALTERNATIVES = ("batch", "streaming", "streaming_consistent", "hybrid")
PRIORITIES = ("cost", "latency", "correctness")
# Batch schedules tried, longest first: the longest that meets the freshness bound is taken.
SCHEDULES_US = tuple(m * 60_000_000 for m in (1440, 720, 360, 180, 60, 30, 15, 5, 1))
EMIT_DELAY_S = 1.0  # a streaming job's own delay from an event's arrival to its value (processing, sink flush)
DAY_US = 86_400_000_000
GB = 1e9


@dataclass(frozen=True)
class Knobs:
    """What the platform wants, in code: high-level priorities and hard limits, and
    the low-level settings they would otherwise choose.

    High level:
      priority: "cost" (default), "latency" or "correctness": what the alternatives
        that meet every limit are ranked by first.
      max_staleness: freshness bound, e.g. "5m": no value older than this when read.
      max_missed: correctness bound, a fraction: at most this share of a value's
        events missed (late data dropped or not yet arrived); 0 demands exact values.
      max_cost: compute budget per feature, core-hours a day (state included at
        ``state_cost``).
      max_state: state a feature may hold in the streaming engine, e.g. "10GB".
    Low level (None: set by the high-level knobs; explain() says how):
      placement: force one of ALTERNATIVES.
      schedule: a batch job's interval, e.g. "1h".
      allowed_lateness: the watermark's lateness of consistent streaming and hybrid.
      tile: the hybrid's tile ("1d", the only one so far).
      batch_engine: "duckdb" (default) or "spark".
      state_cost: core-hours a day that a GB of streaming state costs (default 0.5).
    Per feature:
      features: {feature name: Knobs(...)}, knobs that replace these for those
        features (a fraud score exact, a dashboard count cheap).
    """

    priority: str = "cost"
    max_staleness: Any = None
    max_missed: float | None = None
    max_cost: float | None = None
    max_state: Any = None
    placement: str | None = None
    schedule: Any = None
    allowed_lateness: Any = None
    tile: Any = "1d"
    batch_engine: str = "duckdb"
    state_cost: float = 0.5
    features: Any = ()

    def __post_init__(self) -> None:
        items = self.features.items() if isinstance(self.features, Mapping) else self.features
        overrides = tuple(sorted(items, key=lambda kv: kv[0]))
        for name, k in overrides:
            if not isinstance(k, Knobs):
                raise OptimizerError(f"Knobs features= maps feature names to rp.Knobs(...), got {type(k).__name__} for {name!r}")
        object.__setattr__(self, "features", overrides)
        if self.tile is None:
            object.__setattr__(self, "tile", DAY_US)
        if self.priority not in PRIORITIES:
            raise OptimizerError(f"Knobs priority must be one of {', '.join(PRIORITIES)}, got {self.priority!r}")
        if self.placement is not None and self.placement not in ALTERNATIVES:
            raise OptimizerError(f"Knobs placement must be one of {', '.join(ALTERNATIVES)}, got {self.placement!r}")
        if self.batch_engine not in cost_model.BATCH_ENGINES:
            raise OptimizerError(f"Knobs batch_engine must be one of {', '.join(cost_model.BATCH_ENGINES)}, got {self.batch_engine!r}")
        for name in ("max_staleness", "schedule", "allowed_lateness", "tile"):
            value = getattr(self, name)
            if value is not None and not (name == "allowed_lateness" and value in (0, "0")):
                try:
                    object.__setattr__(self, name, parse_duration(value, what=f"Knobs {name}"))
                except WindowError as e:
                    raise OptimizerError(str(e)) from None
            elif value is not None:
                object.__setattr__(self, name, 0)
        if self.tile != DAY_US:
            raise OptimizerError(f"Knobs tile: hybrid placement tiles by day (tile='1d'), got {format_duration(self.tile)!r}")
        if self.max_missed is not None and not (_number(self.max_missed) and 0.0 <= self.max_missed <= 1.0):
            raise OptimizerError(f"Knobs max_missed is a fraction in [0, 1] (0.001 = 0.1%), got {self.max_missed!r}")
        for name in ("max_cost", "state_cost"):
            value = getattr(self, name)
            if value is not None and not (_number(value) and value >= 0):
                raise OptimizerError(f"Knobs {name} must be a non-negative number (core-hours a day), got {value!r}")
        if self.max_state is not None:
            object.__setattr__(self, "max_state", parse_bytes(self.max_state))

    def for_feature(self, name: str) -> Knobs:
        """The knobs of one feature: its own if ``features`` has them, else these."""
        return dict(self.features).get(name, self)

    def describe(self) -> str:
        parts = [f"priority={self.priority}"]
        if self.max_staleness is not None:
            parts.append(f"max_staleness={format_duration(self.max_staleness)}")
        if self.max_missed is not None:
            parts.append(f"max_missed={_percent(self.max_missed)}")
        if self.max_cost is not None:
            parts.append(f"max_cost={self.max_cost:g} core-h/day")
        if self.max_state is not None:
            parts.append(f"max_state={_bytes(self.max_state)}")
        for name in ("placement", "schedule", "allowed_lateness"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value if isinstance(value, str) else format_duration(value) if value else '0'}")
        if self.batch_engine != "duckdb":
            parts.append(f"batch_engine={self.batch_engine}")
        if self.features:
            parts.append(f"own knobs for {', '.join(name for name, _ in self.features)}")
        return ", ".join(parts)


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


_BYTE_UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def parse_bytes(value: Any) -> float:
    """A size from "10GB", "512MB" or a number of bytes."""
    if _number(value) and value >= 0:
        return float(value)
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "")
        for unit in sorted(_BYTE_UNITS, key=len, reverse=True):
            if text.endswith(unit):
                try:
                    return float(text[: -len(unit)]) * _BYTE_UNITS[unit]
                except ValueError:
                    break
    raise OptimizerError(f"Knobs max_state must be a size like '10GB' or a number of bytes, got {value!r}")


@dataclass(frozen=True)
class Alternative:
    """One way to run a feature, with its estimates; ``refused`` says why it cannot
    run this feature at all, ``violates`` which hard limits it breaks."""

    name: str
    engine: str
    settings: tuple[tuple[str, int], ...] = ()  # schedule / allowed_lateness / tile, microseconds
    compute: float | None = None  # core-hours a day
    state: float | None = None  # bytes held
    cost: float | None = None  # compute + state_cost x GB
    latency: float | None = None  # seconds
    missed: float | None = None  # fraction of events
    refused: str | None = None
    violates: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # how the low-level settings were set

    def setting(self, name: str) -> int | None:
        return dict(self.settings).get(name)

    def describe(self) -> str:
        """``batch (duckdb, schedule=1h)``."""
        parts = [self.engine] + [f"{k}={format_duration(v) if v else '0'}" for k, v in self.settings]
        return f"{self.name} ({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """The alternative's settings (microseconds) and estimates (core-hours a day,
        bytes, seconds, a fraction), and why it is refused or what it breaks."""
        return {
            "name": self.name, "engine": self.engine, "settings": dict(self.settings), "compute": self.compute,
            "state": self.state, "cost": self.cost, "latency": self.latency, "missed": self.missed,
            "refused": self.refused, "violates": list(self.violates), "notes": list(self.notes),
        }

    def estimates(self) -> str:
        if self.refused:
            return f"not applicable: {self.refused}"
        return (
            f"cost {_num(self.cost)} core-h/day (compute {_num(self.compute)}, state {_bytes(self.state)}), "
            f"latency {_duration_s(self.latency)}, missed {_percent(self.missed)}"
        )


@dataclass(frozen=True)
class FeaturePlacement:
    """A feature's alternatives (in ALTERNATIVES order), the chosen one and why."""

    feature: str
    columns: tuple[str, ...]
    alternatives: tuple[Alternative, ...]
    chosen: Alternative
    decided_by: str
    knobs: Knobs | None = None  # the feature's own knobs, where it has them

    def lines(self) -> list[str]:
        out = [f"{self.feature} -> {self.chosen.describe()}  (decided by {self.decided_by})"]
        if self.knobs is not None:
            out.append(f"    its own knobs: {self.knobs.describe()}")
        for a in self.alternatives:
            mark = "*" if a is self.chosen else " "
            text = f"  {mark} {a.describe() if not a.refused else a.name}: {a.estimates()}"
            if a.violates:
                text += f"; breaks {', '.join(a.violates)}"
            out.append(text)
            out += [f"        {note}" for note in a.notes]
        return out


@dataclass(frozen=True)
class Placement:
    knobs: Knobs
    features: tuple[FeaturePlacement, ...] = field(default=())
    config: Any = field(default=None, compare=False)  # the OptimizerConfig (statistics) it was estimated with
    by_output: bool = False  # the plan's outputs were placed, not its features

    def of(self, feature: str) -> FeaturePlacement:
        for f in self.features:
            if f.feature == feature:
                return f
        raise OptimizerError(f"no feature {feature!r} in the placement; its features: {[f.feature for f in self.features]}")

    def totals(self) -> Alternative:
        """The placed plan's three outputs: cost and state summed over its features,
        the worst latency and the worst share of missed events."""
        chosen = [f.chosen for f in self.features]

        def known(values: list[float | None]) -> list[float] | None:
            return None if any(v is None for v in values) else values  # type: ignore[return-value]

        def total(values: list[float | None]) -> float | None:
            vs = known(values)
            return None if vs is None else sum(vs)

        def worst(values: list[float | None]) -> float | None:
            vs = known(values)
            return None if vs is None else max(vs, default=0.0)

        return Alternative(
            "total", "-", (),
            compute=total([a.compute for a in chosen]), state=total([a.state for a in chosen]),
            cost=total([a.cost for a in chosen]), latency=worst([a.latency for a in chosen]),
            missed=worst([a.missed for a in chosen]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The placement for a platform's own tools (json.dumps takes it)."""
        return {
            "knobs": self.knobs.describe(),
            "features": [
                {
                    "feature": f.feature, "columns": list(f.columns), "chosen": f.chosen.name, "decided_by": f.decided_by,
                    "own_knobs": None if f.knobs is None else f.knobs.describe(),
                    "alternatives": [a.to_dict() for a in f.alternatives],
                }
                for f in self.features
            ],
            "total": self.totals().to_dict(),
        }

    def explain(self) -> str:
        lines = [f"placement ({self.knobs.describe()}):"]
        for f in self.features:
            lines += ["  " + ln for ln in f.lines()]
        t = self.totals()
        lines.append(
            f"  total: {_num(t.cost)} core-h/day (compute {_num(t.compute)}, state {_bytes(t.state)}), "
            f"worst latency {_duration_s(t.latency)}, worst missed {_percent(t.missed)}"
        )
        return "\n".join(lines)

    # ---- pictures (ir/dot.py) ---------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT text: per feature (a cluster), its alternatives with their
        estimates; the chosen one green, each one a knob ruled out red and dashed with
        the knob and the value that broke it, the ones that cannot run this feature
        grey and dotted with the reason, the ones that met every limit but ranked lower
        grey (``lost on priority=...``)."""
        from relplan.ir import dot

        t = self.totals()
        out = dot.header("placement", [
            f"placement ({self.knobs.describe()})",
            f"total: {_num(t.cost)} core-h/day (compute {_num(t.compute)}, state {_bytes(t.state)}), "
            f"worst latency {_duration_s(t.latency)}, worst missed {_percent(t.missed)}",
        ], rankdir="LR")
        # Emitted last to first: with rankdir=LR, dot stacks a rank's nodes bottom-up.
        for i, f in reversed(list(enumerate(self.features))):
            knobs = f.knobs or self.knobs
            forced = f.decided_by.endswith("(forced)")
            out += [f"  subgraph cluster_{i} {{", f"    label={dot.quote(f.feature)};", '    style="rounded"; color="#d1d5db";']
            head: list[Any] = [dot.wrap(", ".join(f.columns))] if list(f.columns) != [f.feature] else []
            head.append(("muted", dot.wrap(f"decided by {f.decided_by}", 56, 4)))
            if f.knobs is not None:
                head.append(("muted", dot.wrap(f"its own knobs: {f.knobs.describe()}", 56, 4)))
            fid = f"f{i}"
            out.append(f"    {fid}{dot.attrs(label=dot.label(f.feature, *head), shape='box', style='filled', fillcolor=dot.SINK_FILL, color=dot.SINK_LINE)};")
            for j, a in reversed(list(enumerate(f.alternatives))):
                aid = f"f{i}a{j}"
                lines: list[Any] = []
                node: dict[str, Any]
                edge: dict[str, Any]
                if a.refused:
                    title = a.name
                    why = f"not applicable: {a.refused}"
                    lines.append(("muted", dot.wrap(why, 56, 4)))
                    node = dict(style="rounded,dotted", color=dot.MUTED, fontcolor=dot.MUTED)
                    edge = dict(label="not applicable", style="dotted", color=dot.MUTED)
                else:
                    title = a.describe()
                    lines.append([
                        f"cost {_num(a.cost)} core-h/day (compute {_num(a.compute)}, state {_bytes(a.state)})",
                        f"latency {_duration_s(a.latency)}, missed {_percent(a.missed)}",
                    ])
                    lines.append(("small", [ln for note in a.notes for ln in dot.wrap(note, 64, 2)]))
                    if a is f.chosen:
                        lines.append(("added", dot.wrap(f"chosen: decided by {f.decided_by}", 64, 3)))
                        node = dict(style="rounded,filled", fillcolor=dot.ADDED_FILL, color=dot.ADDED_LINE, penwidth=2)
                        edge = dict(label="chosen", color=dot.ADDED_LINE, penwidth=2)
                    elif a.violates:
                        knobs_named = list(dict.fromkeys(v.split(" ", 1)[0] for v in a.violates))
                        lines.append(("removed", [ln for v in a.violates for ln in dot.wrap(f"ruled out by {v}", 64, 2)]))
                        node = dict(style="rounded,filled,dashed", fillcolor=dot.REMOVED_FILL, color=dot.REMOVED_LINE)
                        edge = dict(label=f"ruled out by {', '.join(knobs_named)}", style="dashed", color=dot.REMOVED_LINE, fontcolor=dot.REMOVED_LINE)
                    else:
                        why = f"not forced (placement={f.chosen.name})" if forced else f"lost on priority={knobs.priority}"
                        lines.append(("muted", [why]))
                        node = dict(style="rounded", color=dot.MUTED)
                        edge = dict(label=why.split(" (", 1)[0], color=dot.MUTED, fontcolor=dot.MUTED)
                out.append(f"    {aid}{dot.attrs(label=dot.label(title, *lines), **node)};")
                out.append(f"    {fid} -> {aid}{dot.attrs(**edge)};")
            out.append("  }")
        out.append("}")
        return "\n".join(out) + "\n"

    def visualize(self) -> SVG:
        """The placement drawn by Graphviz's ``dot`` (``to_dot``): an SVG that Jupyter
        shows (``.data``: its text); without ``dot``, an UnsupportedError naming the package."""
        from relplan.ir.dot import visualize

        return visualize(self.to_dot(), "Placement.visualize()")

    def _repr_svg_(self) -> str | None:
        from relplan.ir.dot import repr_svg

        return repr_svg(self.to_dot)

    def _repr_html_(self) -> str:
        from relplan.ir.dot import repr_html

        return repr_html(self.to_dot, self.explain)


def place_feature(
    feature: str,
    columns: tuple[str, ...],
    sink: Sink,
    stats: Statistics | None,
    knobs: Knobs,
    hybrid_refusal: str | None,
    hybrid_stream: Sink | None,
    stream_refusal: str | None = None,
) -> FeaturePlacement:
    """Estimate every alternative for one feature's optimized plan and choose.
    ``stream_refusal``/``hybrid_refusal``: why the streaming engine cannot run the
    plan, or why it cannot be split hybrid (None: it can; the backends know)."""
    own = knobs.for_feature(feature)
    shown = None if own is knobs else own
    knobs = own
    facts = _Facts.of(sink, stats)
    alternatives = (
        _batch(sink, stats, knobs, facts),
        _streaming(sink, stats, knobs, facts, stream_refusal, consistent=False),
        _streaming(sink, stats, knobs, facts, stream_refusal, consistent=True),
        _hybrid(sink, stats, knobs, facts, hybrid_refusal, hybrid_stream),
    )
    alternatives = tuple(_checked(a, knobs) for a in alternatives)
    ranked = sorted((a for a in alternatives if not a.refused), key=lambda a: _rank(a, knobs.priority))
    if knobs.placement is not None:
        forced = next(a for a in alternatives if a.name == knobs.placement)
        if forced.refused:
            raise OptimizerError(f"feature {feature!r} cannot be placed {forced.name}: {forced.refused}")
        return FeaturePlacement(feature, columns, alternatives, forced, f"placement={forced.name} (forced)", shown)
    feasible = [a for a in ranked if not a.violates]
    if not feasible:
        nothing = Alternative("none", "-")  # no alternative is marked chosen
        table = "\n".join(FeaturePlacement(feature, columns, alternatives, nothing, "").lines()[1:])
        raise OptimizerError(
            f"no placement of feature {feature!r} meets the knobs ({knobs.describe()}):\n{table}\n"
            "loosen a limit, or force one with Knobs(placement=...)"
        )
    chosen = feasible[0]
    above = ranked[: ranked.index(chosen)]
    decided_by = f"priority={knobs.priority}" if not above else _knob_names(above)
    return FeaturePlacement(feature, columns, alternatives, chosen, decided_by, shown)


def _knob_names(rejected: list[Alternative]) -> str:
    """The knobs that ruled out the alternatives ranked above the chosen one:
    ``max_missed (ruled out streaming)``."""
    ruled: dict[str, list[str]] = {}
    for a in rejected:
        for v in a.violates:
            ruled.setdefault(v.split(" ", 1)[0], []).append(a.name)
    return ", ".join(f"{knob} (ruled out {', '.join(names)})" for knob, names in ruled.items())


def _rank(a: Alternative, priority: str) -> tuple[Any, ...]:
    inf = float("inf")
    cost = inf if a.cost is None else round(a.cost, 9)
    latency = inf if a.latency is None else round(a.latency, 9)
    missed = inf if a.missed is None else round(a.missed, 12)
    order = {"cost": (cost, latency, missed), "latency": (latency, cost, missed), "correctness": (missed, cost, latency)}
    return (*order[priority], ALTERNATIVES.index(a.name))


def _checked(a: Alternative, knobs: Knobs) -> Alternative:
    if a.refused:
        return a
    broken = []
    if knobs.max_staleness is not None and (a.latency is None or a.latency > knobs.max_staleness / 1e6):
        broken.append(f"max_staleness {format_duration(knobs.max_staleness)} (latency {_duration_s(a.latency)})")
    if knobs.max_missed is not None and (a.missed is None or a.missed > knobs.max_missed):
        broken.append(f"max_missed {_percent(knobs.max_missed)} (missed {_percent(a.missed)})")
    if knobs.max_cost is not None and (a.cost is None or a.cost > knobs.max_cost):
        broken.append(f"max_cost {knobs.max_cost:g} (cost {_num(a.cost)})")
    if knobs.max_state is not None and (a.state is None or a.state > knobs.max_state):
        broken.append(f"max_state {_bytes(knobs.max_state)} (state {_bytes(a.state)})")
    return Alternative(**{**a.__dict__, "violates": tuple(broken)})


@dataclass(frozen=True)
class _Facts:
    """What the alternatives share: the feature's sources' rates and lateness,
    and how far back its windows read."""

    events_per_s: float | None
    rows: float | None  # the statistics' rows of the sources (a sample's, or the log's)
    lateness: tuple[SourceStats, ...]  # per source: the known lateness distribution
    lookback_us: int | None  # None: all history (a lifetime window)

    @classmethod
    def of(cls, sink: Sink, stats: Statistics | None) -> _Facts:
        rate: float | None = 0.0
        rows: float | None = 0.0
        lateness = []
        for s in sources(sink):
            st = None if stats is None else stats.of(s.name)
            # A table without event time (a lookup table) is read whole, not streamed: no rate.
            r = 0.0 if s.event_time is None else None if st is None else st.rate_of(s.event_time)
            rate = None if rate is None or r is None else rate + r
            rows = None if rows is None or st is None else rows + st.rows
            if st is not None and st.lateness:
                lateness.append(st)
            else:  # the source's declared lateness is the most an event is late
                lateness.append(SourceStats(rows=0, lateness={1.0: s.lateness}))
        lookback: int | None = 0
        for n in walk(sink):
            if isinstance(n, WindowAggregate):
                for frame, _ in n.windows:
                    lookback = None if lookback is None or frame.lower is None else max(lookback, frame.lower)
            elif isinstance(n, TimeWindowAggregate) and lookback is not None:
                lookback = max(lookback, n.window.size)
        return cls(rate, rows, tuple(lateness), lookback)

    def late_fraction(self, allowed: int) -> float | None:
        fractions = [st.late_fraction(allowed) for st in self.lateness]
        return None if any(f is None for f in fractions) else max(fractions, default=0.0)  # type: ignore[type-var]

    def lateness_for(self, max_missed: float) -> int | None:
        each = [st.lateness_for(max_missed) for st in self.lateness]
        return None if any(v is None for v in each) else max(each, default=0)  # type: ignore[type-var]

    def events_per_day(self) -> float | None:
        return None if self.events_per_s is None else self.events_per_s * 86_400


def _whole_ms(us: int) -> int:
    """Up to a whole millisecond (Flink's watermarks and event times are
    milliseconds), and from a second on up to a whole second, a setting a person
    reads and writes; up only, so the bound it was found for still holds."""
    unit = 1_000 if us < 1_000_000 else 1_000_000
    return -(-us // unit) * unit


def _cost(compute: float | None, state: float | None, knobs: Knobs) -> float | None:
    return None if compute is None or state is None else compute + knobs.state_cost * state / GB


def _batch(sink: Sink, stats: Statistics | None, knobs: Knobs, facts: _Facts) -> Alternative:
    engine = knobs.batch_engine
    settle = facts.lateness_for(0.0) or 0
    rows = facts.rows
    row_ns = cost_model.batch_row_ns(sink, stats, engine)

    def run_seconds(schedule: int) -> float | None:
        if rows is None or row_ns is None or facts.events_per_s is None:
            return None
        if facts.lookback_us is None:  # a lifetime window: every run reads all history
            scale = 1.0
        else:
            scale = facts.events_per_s * (schedule + facts.lookback_us) / 1e6 / max(rows, 1.0)
        return cost_model.BATCH_ENGINES[engine].run_s + row_ns * scale / 1e9

    def latency(schedule: int) -> float | None:
        run = run_seconds(schedule)
        return None if run is None else (schedule + settle) / 1e6 + run

    notes = [f"waits {_duration_s(settle / 1e6) if settle else '0'} for late events (the largest lateness known) before each run"]
    if knobs.schedule is not None:
        schedule = knobs.schedule
        notes.append("schedule set by the knob")
    elif knobs.max_staleness is not None:
        fits = [s for s in SCHEDULES_US if (latency(s) or math.inf) <= knobs.max_staleness / 1e6]
        schedule = fits[0] if fits else SCHEDULES_US[-1]
        notes.append(f"schedule: the longest within max_staleness {format_duration(knobs.max_staleness)}" if fits else "schedule: the shortest tried")
    else:
        schedule = SCHEDULES_US[-1] if knobs.priority == "latency" else SCHEDULES_US[0]
        notes.append(f"schedule: the {'shortest' if knobs.priority == 'latency' else 'longest'} tried (priority={knobs.priority})")
    run = run_seconds(schedule)
    compute = None if run is None else run * (DAY_US / schedule) / 3600
    return Alternative(
        "batch", engine, (("schedule", schedule),), compute, 0.0, _cost(compute, 0.0, knobs), latency(schedule), 0.0, notes=tuple(notes)
    )


def _streaming(
    sink: Sink, stats: Statistics | None, knobs: Knobs, facts: _Facts, refused: str | None, *, consistent: bool
) -> Alternative:
    name = "streaming_consistent" if consistent else "streaming"
    if refused:
        return Alternative(name, "flink", refused=refused)
    notes: tuple[str, ...] = ()
    if not consistent:
        lateness = 0
    elif knobs.allowed_lateness is not None:
        lateness, notes = knobs.allowed_lateness, ("allowed_lateness set by the knob",)
    else:
        bound = knobs.max_missed or 0.0
        found = facts.lateness_for(bound)
        if found is None:
            return Alternative(name, "flink", refused=f"no lateness statistics reach the {_percent(1 - bound)} quantile")
        lateness = _whole_ms(found)
        notes = (f"allowed_lateness: the least with at most {_percent(bound)} of events later",)
    return _stream_alternative(name, sink, stats, knobs, facts, lateness, facts.late_fraction(lateness), notes)


def _stream_alternative(
    name: str, sink: Sink, stats: Statistics | None, knobs: Knobs, facts: _Facts, lateness: int,
    missed: float | None, notes: tuple[str, ...], engine: str = "flink", extra_compute: float | None = 0.0,
) -> Alternative:
    per_day = facts.events_per_day()
    compute = None if per_day is None or extra_compute is None else per_day * cost_model.stream_ns_per_event(sink) / 1e9 / 3600 + extra_compute
    state = cost_model.stream_state_bytes(sink, stats, lateness)
    held_back, join_notes = _join_delays(sink)
    return Alternative(
        name, engine, (("allowed_lateness", lateness),), compute, state, _cost(compute, state, knobs),
        (lateness + held_back) / 1e6 + EMIT_DELAY_S, missed, notes=notes + join_notes,
    )


def _join_delays(sink: Sink) -> tuple[int, tuple[str, ...]]:
    """How long a streaming job's joins hold its values back (microseconds), and why:
    Flink holds an interval join's watermark back by its wider bound (a row waits for
    the other side's rows that may still match); an as-of join moves with the slower
    of its two inputs' watermarks, so a dimension that stops updating stalls it."""
    held, notes = 0, []
    for n in walk(sink):
        if isinstance(n, Join) and n.interval:
            wait = max(n.before, n.after)
            held += wait
            notes.append(f"an interval join holds values back by {format_duration(wait) if wait else '0'} (its wider bound)")
        elif isinstance(n, AsOfJoin):
            notes.append("an as-of join waits for the dimension's watermark too: a dimension that stops updating stalls it")
    return held, tuple(dict.fromkeys(notes))


def _hybrid(
    sink: Sink, stats: Statistics | None, knobs: Knobs, facts: _Facts, refusal: str | None, stream: Sink | None
) -> Alternative:
    if refusal or stream is None:
        return Alternative("hybrid", f"{knobs.batch_engine}+flink", refused=refusal or "not a sliding-window feature")
    window = facts.lookback_us or DAY_US
    head_share = DAY_US / window  # a value's events in its current day, the part the stream may miss
    if knobs.allowed_lateness is not None:
        lateness, notes = knobs.allowed_lateness, ("allowed_lateness set by the knob",)
    else:
        bound = knobs.max_missed or 0.0
        found = facts.lateness_for(min(1.0, bound / head_share))
        if found is None:
            return Alternative("hybrid", f"{knobs.batch_engine}+flink", refused="no lateness statistics for its watermark")
        lateness = _whole_ms(found)
        notes = (f"allowed_lateness: the least with at most {_percent(bound)} missed, the stream holding 1 of {format_duration(window)}",)
    late = facts.late_fraction(lateness)
    missed = None if late is None else late * head_share
    # The batch side: the steps job, once a day (backends/hybrid.py).
    run = None if facts.events_per_s is None else cost_model.hybrid_steps_seconds(sink, stats, knobs.batch_engine, facts.events_per_s, window)
    batch_compute = None if run is None else run / 3600
    alt = _stream_alternative(
        "hybrid", stream, stats, knobs, facts, lateness, missed, notes, f"{knobs.batch_engine}+flink", batch_compute
    )
    return Alternative(**{**alt.__dict__, "settings": (("tile", DAY_US), ("allowed_lateness", lateness))})


def _num(v: float | None) -> str:
    return "?" if v is None else f"{v:.3g}"


def _percent(v: float | None) -> str:
    if v is None:
        return "?"
    return "0" if v == 0 else f"{v * 100:.3g}%"


def _bytes(v: float | None) -> str:
    if v is None:
        return "?"
    for unit in ("TB", "GB", "MB", "KB"):
        if v >= _BYTE_UNITS[unit]:
            return f"{v / _BYTE_UNITS[unit]:.3g}{unit}"
    return f"{v:.0f}B"


def _duration_s(v: float | None) -> str:
    if v is None:
        return "?"
    for unit, s in (("d", 86400), ("h", 3600), ("m", 60)):
        if v >= s:
            return f"{v / s:.3g}{unit}"
    return f"{v:.3g}s"

