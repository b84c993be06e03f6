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
    from relplan.rules.driver import TraceEntry
    from relplan.rules.placement import Placement


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

    def explain(self, *, verbose: bool = False, schema: bool = False) -> str:
        """Deterministic plan text; ``verbose`` adds the features and the optimizer trace.
        A placed plan (``rp.optimize(plan, knobs=...)``) ends with its placement."""
        text = explain_nodes(self.outputs, schema=schema or verbose)
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
