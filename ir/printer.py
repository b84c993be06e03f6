"""explain(): deterministic, indented plan text; a shared subplan is printed once.

    r0 := Source Transactions event_time=ts bounded
    Sink features
      Project cc_num, amt, ...
        WindowAggregate partition=[account_id] ...
          r0

Names ``r0, r1, ...`` are given in topological order to every subplan used more
than once, so the text is stable across runs and Python hash seeds.
"""

from __future__ import annotations

from collections.abc import Iterable

from relplan.ir.graph import use_counts, walk
from relplan.ir.nodes import Node, Source


def explain(roots: Iterable[Node], *, schema: bool = False, annotate: dict[Node, str] | None = None) -> str:
    """Plan text for ``roots``; ``schema=True`` appends each node's output columns."""
    roots = tuple(roots)
    counts = use_counts(roots)
    shared = [n for n in walk(roots) if counts.get(n, 0) > 1 and n not in roots]
    names = {n: f"r{i}" for i, n in enumerate(shared)}
    lines: list[str] = []

    def line(n: Node, depth: int, prefix: str = "") -> None:
        text = f"{'  ' * depth}{prefix}{n.kind}"
        d = n.details()
        if d:
            text += " " + d
        if schema:
            text += "  :: " + ", ".join(f"{f.name}: {f.dtype}" for f in n.schema)
        if annotate and n in annotate:
            text += f"  [{annotate[n]}]"
        lines.append(text)

    def emit(n: Node, depth: int, top: bool) -> None:
        stack: list[tuple[Node, int, bool]] = [(n, depth, top)]
        while stack:
            cur, d, is_top = stack.pop()
            if not is_top and cur in names:
                lines.append(f"{'  ' * d}{names[cur]}")
                continue
            line(cur, d, f"{names[cur]} := " if is_top and cur in names else "")
            for child in reversed(cur.inputs):
                stack.append((child, d + 1, False))

    for n in shared:
        emit(n, 0, True)
    for r in roots:
        emit(r, 0, True)
    return "\n".join(lines)


def sources(roots: Iterable[Node]) -> list[Source]:
    """The distinct sources a plan reads, in topological order."""
    return [n for n in walk(roots) if isinstance(n, Source)]
