"""Plan: the compiled (and later optimized and placed) IR with its outputs and history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relplan.ir.errors import RelplanError
from relplan.ir.nodes import Sink
from relplan.ir.printer import explain as explain_nodes

if TYPE_CHECKING:
    import pyarrow as pa

    from relplan.compiler.transformation import Feature
    from relplan.compiler.deployment import Deployment
    from relplan.ir.dot import SVG
    from relplan.ir.nodes import Node
    from relplan.rules.driver import TraceEntry
    from relplan.rules.placement import Placement
    from relplan.rules.statistics import Statistics


@dataclass(frozen=True)
class Plan:
    """A plan of named outputs (Sink nodes) over the IR; immutable."""

    outputs: tuple[Sink, ...]
    features: tuple[Feature, ...] = ()
    trace: tuple[TraceEntry, ...] = field(default=(), compare=False)
    optimized: bool = field(default=False, compare=False)
    placement: Placement | None = field(default=None, compare=False)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.outputs)

    def output(self, name: str) -> Sink:
        for s in self.outputs:
            if s.name == name:
                return s
        raise RelplanError(f"plan has no output {name!r}; its outputs are {list(self.output_names)}")

    def explain(self, *, verbose: bool = False, schema: bool = False, statistics: Statistics | None = None) -> str:
        """Deterministic plan text; ``verbose`` adds the features and the optimizer trace.
        A placed plan (``rp.optimize(plan, knobs=...)``) ends with its placement.
        ``statistics=rp.Statistics(...)``: each node's estimated rows, its share of a batch
        run and the state a streaming job holds for it, in brackets, and the whole plan's."""
        annotate: dict[Node, str] | None = None
        total = ""
        if statistics is not None:
            from relplan.rules.statistics import Statistics as _Statistics

            if not isinstance(statistics, _Statistics):
                raise RelplanError(f"explain(statistics=...) takes an rp.Statistics, got {type(statistics).__name__}")
            engine = self.placement.knobs.batch_engine if self.placement is not None else "duckdb"
            notes, total = _estimate_notes(self.outputs, statistics, engine)
            annotate = {n: ", ".join(lines) for n, lines in notes.items()}
        text = explain_nodes(self.outputs, schema=schema or verbose, annotate=annotate)
        if total:
            text += "\n" + total
        if self.placement is not None:
            text += "\n" + self.placement.explain()
        if not verbose:
            return text
        lines = ["features:"]
        for f in self.features:
            lines.append(f"  {', '.join(f.columns)}: {f.transformation} window={f.spec!r} (defined at {f.defined_at})")
        lines.append("plan:")
        lines += ["  " + ln for ln in text.splitlines()]
        lines.append("optimizer trace:")
        lines += ["  " + ln for ln in self.explain_trace().splitlines()]
        return "\n".join(lines)

    def explain_trace(self) -> str:
        """Which rule removed and added which nodes, pass by pass."""
        if not self.optimized:
            return "(not optimized)"
        if not self.trace:
            return "(no rule changed the plan)"
        return "\n".join(ln for t in self.trace for ln in t.lines())

    def deployment(self) -> Deployment:
        """The placed plan as a DAG of jobs (see compiler/deployment.py)."""
        from relplan.compiler.deployment import deployment

        if self.placement is None:
            raise RelplanError("this plan is not placed: call rp.optimize(plan, statistics=..., knobs=rp.Knobs(...)) first")
        return deployment(self)

    def __str__(self) -> str:
        return self.explain()

    def to_json(self, *, canonical: bool = False) -> str:
        """The plan as a relplan JSON document (catalog/serialize.py): its nodes,
        outputs, features, trace and placement; indented, or compact (``canonical``)."""
        from relplan.catalog.serialize import dumps, plan_to_dict

        return dumps(plan_to_dict(self), canonical=canonical)

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        """The plan of a document ``to_json()`` wrote (equal outputs, features, trace and
        placement); a ``FormatError`` names what is wrong with any other text."""
        from relplan.catalog.serialize import loads, plan_from_dict

        return plan_from_dict(loads(text, "plan"))

    def to_sql(self, engine: str = "duckdb", *, pretty: bool = True, **options: Any) -> str:
        """The SQL ``engine`` runs for this plan, one statement per output (``pretty``: indented)."""
        from relplan.backends import get_backend

        return get_backend(engine, **options).to_sql(self.outputs, pretty=pretty)

    def execute(self, engine: str = "duckdb", tables: dict[str, Any] | None = None, **kw: Any) -> pa.Table:
        from relplan.compiler.execute import execute

        return execute(self, engine=engine, tables=tables, **kw)

    # ---- pictures (ir/dot.py) ---------------------------------------------------------------
    def to_dot(
        self, *, schema: bool = False, before: Plan | None = None, changes: bool = False, statistics: Statistics | None = None
    ) -> str:
        """Graphviz DOT text of the plan DAG: one box per distinct node (a shared
        subplan is drawn once, named ``r0, r1, ...`` as in ``explain()``), edges from
        an input to its user, the outputs (sinks) in bold blue, sources as cylinders.

        ``schema=True``: each node's columns and types.
        ``before=<a Plan>``: what changed since that plan (typically the one passed to
        ``rp.optimize``): nodes only in this plan green, nodes only in ``before`` red and
        dashed, with the rule that added or removed them where this plan's trace says.
        ``changes=True``: the same from this optimized plan's own trace (no need to keep
        the plan it was optimized from): the changes since ``rp.compile``.
        ``statistics=rp.Statistics(...)``: each node's estimated rows, its share of a
        batch run's time and the state a streaming job holds for it (rules/cardinality.py,
        rules/cost_model.py)."""
        from relplan.ir.dot import plan_dot
        from relplan.rules.statistics import Statistics

        if before is not None and not isinstance(before, Plan):
            raise RelplanError(f"to_dot(before=...) takes an earlier rp.Plan, got {type(before).__name__}")
        if statistics is not None and not isinstance(statistics, Statistics):
            raise RelplanError(f"to_dot(statistics=...) takes an rp.Statistics, got {type(statistics).__name__}")
        if changes and not self.optimized:
            raise RelplanError("to_dot(changes=True) draws the optimizer's changes, but this plan is not optimized: rp.optimize(plan) first, or pass before=")
        old: list[Node] | None = None
        added_by, removed_by, old_from_trace = self._trace_changes()
        if before is not None:
            from relplan.ir.graph import walk

            old = walk(before.outputs)
        elif changes:
            old = old_from_trace
        titles = [f"plan: {len(self.outputs)} output{'s' if len(self.outputs) != 1 else ''}"]
        if self.optimized:
            titles[0] += ", optimized"
        if changes and not self.trace:
            titles.append("no rule changed the plan")
        elif old is not None:
            titles.append("green: added by the optimizer; red, dashed: removed")
        notes: dict[Node, list[str]] = {}
        if statistics is not None:
            engine = self.placement.knobs.batch_engine if self.placement is not None else "duckdb"
            notes, total = _estimate_notes(self.outputs, statistics, engine)
            titles.append(total)
        return plan_dot(
            self.outputs, schema=schema, before=old, added_by=added_by, removed_by=removed_by, notes=notes,
            title=titles,
        )

    def _trace_changes(self) -> tuple[dict[Node, str], dict[Node, str], list[Node]]:
        """From the trace: the rule that last added each node and that first removed each
        one, and the nodes of the plan before the first rule (the trace replayed backwards)."""
        from relplan.ir.graph import walk

        added_by: dict[Node, str] = {}
        removed_by: dict[Node, str] = {}
        for t in self.trace:
            for n in t.added_nodes:
                added_by[n] = t.rule
            for n in t.removed_nodes:
                removed_by.setdefault(n, t.rule)
        now = walk(self.outputs)
        nodes = set(now)
        for t in reversed(self.trace):
            nodes.difference_update(t.added_nodes)
            nodes.update(t.removed_nodes)
        order = list(dict.fromkeys([*now, *(n for t in self.trace for n in t.removed_nodes)]))
        return added_by, removed_by, [n for n in order if n in nodes]

    def visualize(
        self, *, schema: bool = False, before: Plan | None = None, changes: bool = False, statistics: Statistics | None = None
    ) -> SVG:
        """The plan drawn (``to_dot``'s options) by Graphviz's ``dot``: an SVG that Jupyter
        shows; ``.data`` is its text, ``.save(path)`` writes it. Without the ``dot``
        program an UnsupportedError names the package to install."""
        from relplan.ir.dot import visualize

        return visualize(self.to_dot(schema=schema, before=before, changes=changes, statistics=statistics), "Plan.visualize()")

    def _repr_svg_(self) -> str | None:
        from relplan.ir.dot import repr_svg

        return repr_svg(self.to_dot, too_big=self._too_big_to_draw)

    def _repr_html_(self) -> str:
        from relplan.ir.dot import repr_html

        return repr_html(self.to_dot, self.explain, too_big=self._too_big_to_draw)

    def _too_big_to_draw(self) -> bool:
        from relplan.ir.dot import REPR_MAX_NODES
        from relplan.ir.graph import walk

        return len(walk(self.outputs)) > REPR_MAX_NODES


def _estimate_notes(outputs: tuple[Sink, ...], statistics: Statistics, engine: str) -> tuple[dict[Node, list[str]], str]:
    """Per node: estimated rows, its part of a batch run on ``engine``, the streaming
    state it holds; and the whole plan's in one line."""
    from relplan.ir.dot import count, seconds, size
    from relplan.rules import cost_model
    from relplan.rules.cardinality import estimate

    est = estimate(outputs, statistics)
    constants = cost_model.BATCH_ENGINES[engine]
    notes: dict[Node, list[str]] = {}
    run_ns: float | None = 0.0
    state: float | None = 0.0
    for n, e in est.items():
        lines = [f"rows ≈ {count(e.rows)}"]
        rows = cost_model._input_rows(n, est)  # one node's share, as batch_row_ns sums them
        ns = None if rows is None else cost_model._node_ns(n, rows, e, constants)
        run_ns = None if run_ns is None or ns is None else run_ns + ns
        if ns:
            lines.append(f"{engine} ≈ {seconds(ns / 1e9)}")
        if e.state_bytes is None or e.state_bytes > 0:
            lines.append(f"stream state ≈ {size(e.state_bytes)}")
        state = None if state is None or e.state_bytes is None else state + e.state_bytes
        notes[n] = lines
    run = None if run_ns is None else constants.run_s + run_ns / 1e9
    return notes, f"estimated: a {engine} run ≈ {seconds(run)}, streaming state ≈ {size(state)} (before the watermark's buffer)"
