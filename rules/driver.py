"""The rule driver: an ordered tuple of rules run to a fixed point, checked after every rule.

A rule is a plain function ``rule(roots, ctx) -> roots`` over a plan's outputs
(a tuple of Sink nodes), living in ``rules/<rule_name>.py`` and named like its
module; it returns the very same tuple when it changes nothing. The rule's name
is its module name, its config flag and its trace label.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from relplan.ir.errors import OptimizerError, RelplanError
from relplan.ir.graph import transform, walk
from relplan.ir.nodes import Node, Sink
from relplan.ir.schema import names_in
from relplan.rules.statistics import Statistics

Roots = tuple[Sink, ...]
Rule = Callable[[Roots, "RuleContext"], Roots]


@dataclass(frozen=True)
class OptimizerConfig:
    """Which rules run, and what the cost-based ones know and assume.

    Every rule can be switched off by name; ``all_off()`` runs none. ``statistics``
    (row counts, distinct-key counts and time spans of the sources) lets
    ``tile_long_windows`` decide; ``tile_min_rows_per_frame`` is where tiles start to
    pay on DuckDB, measured by bench/test_tiles_bench.py (see the rule's docstring).
    ``asof_lowering`` forces one lowering of point-in-time joins wherever it applies
    (a hint, as in Spark's join hints: ``asof`` applies to latest values only,
    ``tiles`` to count, sum, mean, min and max, the others everywhere); otherwise
    ``choose_asof_lowering`` chooses by estimated cost.
    """

    disabled: frozenset[str] = frozenset()
    max_passes: int = 8
    statistics: Statistics | None = None
    tile_min_rows_per_frame: int = 20_000
    asof_lowering: str | None = None

    def __post_init__(self) -> None:
        from relplan.rules import RULE_NAMES

        unknown = set(self.disabled) - set(RULE_NAMES)
        if unknown:
            raise OptimizerError(f"unknown rule(s) {sorted(unknown)}; the rules are {', '.join(RULE_NAMES)}")
        if self.max_passes < 1:
            raise OptimizerError("max_passes must be at least 1")
        if self.statistics is not None and not isinstance(self.statistics, Statistics):
            raise OptimizerError(f"statistics must be an rp.Statistics, got {type(self.statistics).__name__}")
        from relplan.ir.nodes import ASOF_LOWERINGS

        if self.asof_lowering is not None and self.asof_lowering not in ASOF_LOWERINGS:
            raise OptimizerError(f"asof_lowering must be one of {', '.join(ASOF_LOWERINGS)}, got {self.asof_lowering!r}")
        if self.tile_min_rows_per_frame < 0:
            raise OptimizerError("tile_min_rows_per_frame must be non-negative")

    @classmethod
    def all_off(cls) -> OptimizerConfig:
        from relplan.rules import RULE_NAMES

        return cls(disabled=frozenset(RULE_NAMES))

    @classmethod
    def only(cls, *names: str) -> OptimizerConfig:
        from relplan.rules import RULE_NAMES

        cls(disabled=frozenset(names))  # validates the names
        return cls(disabled=frozenset(RULE_NAMES) - set(names))

    def without(self, *names: str) -> OptimizerConfig:
        return dataclasses.replace(self, disabled=self.disabled | set(names))

    def enabled(self, name: str) -> bool:
        return name not in self.disabled


@dataclass
class RuleContext:
    """What a rule may use besides the plan: the config, fresh column names, and a memo.

    ``memo`` keeps what a rule computed for a node for the later passes of the same
    run: nodes are values, so a node met again (most of the plan, in the pass that
    finds the fixed point) is a look-up, not a recomputation."""

    config: OptimizerConfig
    used_names: set[str] = field(default_factory=set)
    _counter: itertools.count = field(default_factory=itertools.count)
    memo: dict[tuple[str, Node], object] = field(default_factory=dict)
    _walked: dict[object, object] = field(default_factory=dict, repr=False)

    def nodes(self, roots: Roots) -> list[Node]:
        """``walk(roots)``, remembered for the plans of this run (every rule of a pass
        walks the plan the rule before it returned: one walk each, not one per rule)."""
        return self._facts(roots)[0]

    def uses(self, roots: Roots) -> dict[Node, int]:
        """``use_counts(roots)``, remembered like ``nodes``."""
        key = ("uses", id(roots))
        got = self._walked.get(key)
        if got is None or got[0] is not roots:
            # use_counts(roots), counted over the walk remembered by nodes() (not walked again)
            counts: dict[Node, int] = {}
            for n in self.nodes(roots):
                for child in n.inputs:
                    counts[child] = counts.get(child, 0) + 1
            for r in roots:
                counts[r] = counts.get(r, 0) + 1
            got = self._walked[key] = (roots, counts)
        return got[1]  # type: ignore[no-any-return]

    def _facts(self, roots: Roots) -> tuple[list[Node], bool]:
        # By identity (the tuple is held, so its id is not reused): an equal plan of
        # other objects must be walked for its own objects.
        got = self._walked.get(id(roots))
        if got is None or got[0] is not roots:
            if len(self._walked) > 16:
                self._walked.clear()
            order = walk(roots)
            # Two objects of one value: transform() makes them one object (see transform_where).
            first = {n: n for n in order}
            aliased = any(first[r] is not r for r in roots) or any(
                first[i] is not i for n in order for i in n.inputs
            )
            got = self._walked[id(roots)] = (roots, order, aliased)
        return got[1], got[2]  # type: ignore[return-value]

    def transform_where(
        self, roots: Roots, touches: Callable[[Node], bool], fn: Callable[..., Node | None], *, with_original: bool = False
    ) -> Roots:
        """``transform(roots, fn, with_original=...)`` for a rule whose ``fn`` returns None
        for every node that ``touches`` refuses and whose inputs did not change: those
        nodes are passed over (a rule that rewrites filters looks at the filters of a
        thousand stacked windows, not at every window). The same result as transform's,
        also the very same ``roots`` when nothing changes; where two objects of the plan
        are one value (transform makes them one object), transform itself runs."""
        order, aliased = self._facts(roots)
        if aliased:
            return transform(roots, fn, with_original=with_original)  # type: ignore[return-value]
        done: dict[Node, Node] = {}  # the nodes rebuilt or replaced
        for n in order:
            ins = n.inputs
            changed = bool(done) and any(i in done for i in ins)
            if not changed and not touches(n):
                continue
            new_inputs = tuple(done.get(i, i) for i in ins) if changed else ins
            if with_original:
                out = fn(n, new_inputs)
                cur = n.with_inputs(new_inputs) if out is None and changed else n
            else:
                cur = n.with_inputs(new_inputs) if changed else n
                out = fn(cur)
            new = cur if out is None else out
            if new is not n:
                done[n] = new
        if not done:
            return roots
        new_roots = tuple(done.get(r, r) for r in roots)
        return roots if all(a is b for a, b in zip(new_roots, roots)) else new_roots  # type: ignore[return-value]

    def fresh(self, hint: str) -> str:
        """A column name no plan column uses: ``__<hint>``, else ``__<hint>_<n>``.

        Rules give hints that name what the column is for (``m1h_count``: the count
        behind mean ``m1h``), so a column's name does not depend on how many others were
        made before it: a plan that gains a feature keeps its other names, and the SQL
        text cached for them."""
        name = f"__{hint}"
        while name in self.used_names:
            name = f"__{hint}_{next(self._counter)}"
        self.used_names.add(name)
        return name


@dataclass(frozen=True)
class TraceEntry:
    """One rule firing: which nodes it removed and which it added.

    Holds the nodes and describes them when asked: most traces are never printed,
    and describing the thousand nodes a merge removes was a tenth of optimizing."""

    pass_no: int
    rule: str
    removed_nodes: tuple[Node, ...]
    added_nodes: tuple[Node, ...]

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(_describe(n) for n in self.removed_nodes)

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(_describe(n) for n in self.added_nodes)

    def lines(self) -> list[str]:
        out = [f"pass {self.pass_no}: {self.rule}"]
        out += [f"  - {r}" for r in self.removed]
        out += [f"  + {a}" for a in self.added]
        return out


def _describe(n: Node) -> str:
    d = n.details()
    return f"{n.kind} {d}" if d else n.kind


def _diff(before: Roots, after: Roots, ctx: RuleContext | None = None) -> tuple[tuple[Node, ...], tuple[Node, ...]]:
    old, new = (walk(before), walk(after)) if ctx is None else (ctx.nodes(before), ctx.nodes(after))
    old_set, new_set = set(old), set(new)
    return tuple(n for n in old if n not in new_set), tuple(n for n in new if n not in old_set)


def _check(rule: str, before: Roots, after: Roots) -> None:
    if not isinstance(after, tuple) or not all(isinstance(s, Sink) for s in after):
        raise OptimizerError(f"rule {rule} returned {type(after).__name__}, not a tuple of Sink nodes")
    if [(s.name, s.schema) for s in before] != [(s.name, s.schema) for s in after]:
        for b, a in zip(before, after):
            if b.schema != a.schema:
                raise OptimizerError(
                    f"rule {rule} changed the schema of output {b.name!r}: {b.schema!r} -> {a.schema!r}"
                )
        raise OptimizerError(f"rule {rule} changed the plan's outputs {[s.name for s in before]}")


def run_rules(
    roots: Roots, config: OptimizerConfig, rules: Iterable[tuple[str, Rule]]
) -> tuple[Roots, tuple[TraceEntry, ...]]:
    """Run ``rules`` in order, pass after pass, until a pass changes nothing."""
    rules = [(name, rule) for name, rule in rules if config.enabled(name)]
    ctx = RuleContext(config)
    ctx.used_names = names_in(n.schema for n in ctx.nodes(roots))
    trace: list[TraceEntry] = []
    for pass_no in range(1, config.max_passes + 1):
        changed = False
        for name, rule in rules:
            try:
                after = rule(roots, ctx)
            except RelplanError as e:
                raise OptimizerError(f"rule {name} failed: {e}") from e
            except Exception as e:  # noqa: BLE001 - a rule's bug must name the rule
                raise OptimizerError(f"rule {name} failed: {type(e).__name__}: {e}") from e
            if after is roots:
                continue
            _check(name, roots, after)
            removed, added = _diff(roots, after, ctx)
            roots = after
            if removed or added:
                changed = True
                trace.append(TraceEntry(pass_no, name, removed, added))
        if not changed:
            break
    return roots, tuple(trace)
