"""Pictures: Graphviz DOT text for plans, placements, deployments and lineage, and SVG
drawn from it by Graphviz's ``dot`` program.

DOT text needs no Python package and no program; SVG needs ``dot`` (the Debian
package ``graphviz``). Everything here is deterministic: the same plan gives the
same text, whatever the hash seed.

    dot = plan.to_dot()                 # text, for any Graphviz tool
    plan.visualize()                    # an SVG object: shown by Jupyter, .data is the text
    plan.visualize().save("plan.svg")

``plan_dot`` draws a plan DAG: one DOT node per distinct IR node (nodes are values,
so a shared subplan is drawn once), edges from an input to its user. Jupyter's rich
reprs (``repr_svg``, ``repr_html``) never raise: without ``dot`` a picture falls
back to the object's text.

This module imports only ``relplan.ir``: the statistics and optimizer facts a
picture shows are computed by the callers (compiler/plan.py) and handed in.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from relplan.ir.errors import RelplanError, UnsupportedError
from relplan.ir.graph import use_counts, walk
from relplan.ir.nodes import Node, Sink, Source

FONT = "Helvetica"
DETAIL_WIDTH = 64  # characters per line of a node's details
DETAIL_LINES = 6  # lines of details shown; the rest is in the node's tooltip
SCHEMA_LINES = 24  # columns listed with schema=True; the rest counted
TOOLTIP_CHARS = 2000
REPR_MAX_NODES = 400  # a notebook repr draws plans up to this size; visualize() draws any
DOT_TIMEOUT_S = 120

# Colours: sinks blue, sources grey, added green, removed red (dashed).
SINK_FILL, SINK_LINE = "#dbeafe", "#1d4ed8"
SOURCE_FILL = "#f3f4f6"
ADDED_FILL, ADDED_LINE = "#dcfce7", "#15803d"
REMOVED_FILL, REMOVED_LINE = "#fee2e2", "#b91c1c"
MUTED = "#6b7280"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# ---- text -----------------------------------------------------------------------------------
def quote(text: str) -> str:
    """A DOT quoted string (ids, plain labels, tooltips)."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))  # shown as \xNN
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def escape(text: str) -> str:
    """Text for a DOT HTML-like label: markup characters escaped, control characters
    shown as ``\\xNN`` (the SVG must stay well-formed XML)."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return html.escape(text, quote=False).replace('"', "&quot;")


def wrap(text: str, width: int = DETAIL_WIDTH, max_lines: int = DETAIL_LINES) -> list[str]:
    """``text`` in lines of at most ``width`` characters, at most ``max_lines`` of them
    (the last one then ends with an ellipsis)."""
    lines: list[str] = []
    for part in str(text).splitlines() or [""]:
        lines += textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=False) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    return lines


def label(title: str, *sections: Iterable[str] | tuple[str, Iterable[str]], note: str = "") -> str:
    """An HTML-like label: ``title`` in bold (and ``note`` beside it, muted), then each
    section's lines, left-aligned; a section given as ``(style, lines)`` is drawn in
    that style: ``"small"``, ``"muted"``, ``"added"``, ``"removed"``."""
    parts = [f"<B>{escape(title)}</B>"]
    if note:
        parts.append(f' <FONT COLOR="{MUTED}">{escape(note)}</FONT>')
    parts.append('<BR ALIGN="LEFT"/>')
    for section in sections:
        style, lines = section if isinstance(section, tuple) else ("", section)
        for ln in lines:
            text = escape(ln)
            if style == "small":
                text = f'<FONT POINT-SIZE="9" COLOR="{MUTED}">{text}</FONT>'
            elif style == "muted":
                text = f'<FONT COLOR="{MUTED}">{text}</FONT>'
            elif style == "added":
                text = f'<FONT COLOR="{ADDED_LINE}">{text}</FONT>'
            elif style == "removed":
                text = f'<FONT COLOR="{REMOVED_LINE}">{text}</FONT>'
            parts.append(text + '<BR ALIGN="LEFT"/>')
    return "<" + "".join(parts) + ">"


def attrs(**values: Any) -> str:
    """`` [a="x", b=<...>]``: strings quoted, HTML labels (``<...>``) and numbers as they are;
    None left out; in the order given."""
    items = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str) and not (value.startswith("<") and value.endswith(">")):
            value = quote(value)
        items.append(f"{key}={value}")
    return f" [{', '.join(items)}]" if items else ""


def header(name: str, title: str | Iterable[str] = "", *, rankdir: str = "TB") -> list[str]:
    """The first lines of a digraph in the house style (catalog/lineage.py's); ``title``:
    the graph's label, its lines left-aligned above the picture."""
    out = [
        f"digraph {quote(name)} {{",
        f"  rankdir={rankdir};",
        f'  graph [fontname="{FONT}", fontsize=12, labelloc=t, labeljust=l, nodesep=0.3, ranksep=0.35];',
        f'  node [shape=box, style="rounded,filled", fillcolor=white, fontname="{FONT}", fontsize=11];',
        f'  edge [fontname="{FONT}", fontsize=9, color="#4b5563"];',
    ]
    lines = [title] if isinstance(title, str) else list(title)
    lines = [ln for ln in lines if ln]
    if lines:
        out.append("  label=" + '"' + "".join(quote(ln)[1:-1] + "\\l" for ln in lines) + '";')
    return out


# ---- SVG --------------------------------------------------------------------------------------
def render_svg(dot_text: str, *, what: str = "visualize()", source: str = "to_dot", subject: str = "the picture") -> str:
    """SVG text drawn by Graphviz's ``dot`` from ``dot_text``. Without the program, an
    UnsupportedError naming the package to install (``what`` is the call that needs it,
    ``source`` the method giving the DOT text instead)."""
    exe = shutil.which("dot")
    if exe is None:
        raise UnsupportedError(
            f"{what} runs Graphviz's `dot` program, which is not installed: install the Debian package graphviz "
            "(apt-get install graphviz; brew or conda install graphviz elsewhere: pip cannot install the program, "
            f"its graphviz package only calls it), or render {source}() elsewhere"
        )
    return _render(exe, dot_text, subject)


@functools.lru_cache(maxsize=32)
def _render(exe: str, dot_text: str, subject: str) -> str:
    # Cached: a notebook asks for the SVG and the HTML repr of the same object.
    try:
        done = subprocess.run([exe, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RelplanError(f"Graphviz's dot failed to run: {e}") from e
    if done.returncode != 0:
        raise RelplanError(f"Graphviz's dot rejected {subject}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


class SVG:
    """A drawn picture: Jupyter shows it (``_repr_svg_``), ``.data`` and ``str()`` are
    the SVG text, ``save(path)`` writes it, ``dot`` is the DOT text it was drawn from."""

    def __init__(self, data: str, dot: str = "") -> None:
        self.data = data
        self.dot = dot

    def _repr_svg_(self) -> str:
        return self.data

    def _repr_html_(self) -> str:
        return inline_svg(self.data)

    def save(self, path: Any) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.data)

    def __str__(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return f"<SVG: {len(self.data):,} characters>"


def visualize(dot_text: str, what: str = "visualize()") -> SVG:
    return SVG(render_svg(dot_text, what=what), dot_text)


def inline_svg(svg: str) -> str:
    """The SVG as an element for an HTML page (its XML prolog and doctype dropped)."""
    start = svg.find("<svg")
    return f'<div class="relplan-picture">{svg[start:] if start >= 0 else svg}</div>'


def repr_svg(dot: Callable[[], str], *, too_big: Callable[[], bool] | None = None) -> str | None:
    """A ``_repr_svg_``: the SVG, or None (Jupyter then uses the other reprs) when
    ``dot`` is not installed, the picture is too big for a notebook, or anything fails."""
    try:
        if shutil.which("dot") is None or (too_big is not None and too_big()):
            return None
        return render_svg(dot())
    except Exception:  # noqa: BLE001 - a repr never raises
        return None


def repr_html(dot: Callable[[], str], text: Callable[[], str], *, too_big: Callable[[], bool] | None = None) -> str:
    """A ``_repr_html_``: the SVG inline when it can be drawn, else ``text()`` in a <pre>."""
    svg = repr_svg(dot, too_big=too_big)
    if svg is not None:
        return inline_svg(svg)
    try:
        body = text()
    except Exception as e:  # noqa: BLE001 - a repr never raises
        body = f"({type(e).__name__}: {e})"
    return f'<pre class="relplan-text">{html.escape(body)}</pre>'


# ---- plans ------------------------------------------------------------------------------------
def shared_names(roots: tuple[Node, ...]) -> dict[Node, str]:
    """explain()'s names: ``r0, r1, ...`` in topological order for every subplan used more than once."""
    counts = use_counts(roots)
    return {n: f"r{i}" for i, n in enumerate(n for n in walk(roots) if counts.get(n, 0) > 1 and n not in roots)}


def _input_names(n: Node) -> list[str]:
    """Edge labels for a node of several inputs (``left``/``right``, ``spine``/``events``)."""
    if len(n.inputs) < 2:
        return []
    names = [f.name for f in dataclasses.fields(n) if isinstance(getattr(n, f.name), Node)]  # type: ignore[arg-type]
    return names if len(names) == len(n.inputs) else []


def plan_dot(
    roots: tuple[Node, ...],
    *,
    schema: bool = False,
    before: Iterable[Node] | None = None,
    added_by: Mapping[Node, str] | None = None,
    removed_by: Mapping[Node, str] | None = None,
    notes: Mapping[Node, list[str]] | None = None,
    title: str | Iterable[str] = "",
    name: str = "plan",
) -> str:
    """DOT text of the plan DAG under ``roots``.

    ``before``: the nodes of an earlier plan (in a stable order): the nodes only in
    ``roots`` are drawn green (added), the nodes only in ``before`` red and dashed
    with the edges from their inputs (removed); ``added_by`` / ``removed_by`` name
    the rule that did it. ``notes``: extra lines per node (estimates)."""
    nodes = walk(roots)
    present = set(nodes)
    removed: list[Node] = []
    if before is not None:
        old = list(before)
        old_set = set(old)
        added = {n for n in nodes if n not in old_set}
        removed = [n for n in walk(old) if n in old_set and n not in present]
    else:
        added = set()
    ids = {n: f"n{i}" for i, n in enumerate(nodes + removed)}
    shared = shared_names(roots)
    counts = use_counts(roots)
    sinks = set(roots)
    notes = notes or {}
    out = header(name, title)
    if before is not None:
        out.append(f"  // {len(added)} node(s) added, {len(removed)} removed")
    for n in nodes + removed:
        is_removed = n not in present
        sections: list[Any] = [wrap(n.details())] if n.details() else []
        if schema:
            fields = list(n.schema.fields)
            lines = [f"{f.name}: {f.dtype}" for f in fields[:SCHEMA_LINES]]
            if len(fields) > SCHEMA_LINES:
                lines.append(f"… and {len(fields) - SCHEMA_LINES} more columns")
            sections.append(("small", lines))
        if n in notes:
            sections.append(("muted", notes[n]))
        if n in added:
            rule = (added_by or {}).get(n)
            sections.append(("added", [f"+ added by {rule}" if rule else "+ added by the optimizer"]))
        if is_removed:
            rule = (removed_by or {}).get(n)
            sections.append(("removed", [f"- removed by {rule}" if rule else "- removed by the optimizer"]))
        note = shared.get(n, "")
        if note and counts.get(n, 0) > 1:
            note += f" (used {counts[n]}x)"
        a: dict[str, Any] = {"label": label(n.kind, *sections, note=note)}
        full = f"{n.kind} {n.details()}".strip()
        a["tooltip"] = full if len(full) <= TOOLTIP_CHARS else full[: TOOLTIP_CHARS - 1] + "…"
        if isinstance(n, Source):
            a.update(shape="cylinder", style="filled", fillcolor=SOURCE_FILL)
        if n in sinks or (isinstance(n, Sink) and not is_removed):
            a.update(penwidth=2, color=SINK_LINE, fillcolor=SINK_FILL, peripheries=2)
        if n in added:
            a.update(penwidth=2, color=ADDED_LINE, fillcolor=ADDED_FILL)
        if is_removed:
            a.update(color=REMOVED_LINE, fillcolor=REMOVED_FILL, fontcolor=REMOVED_LINE, penwidth=1.5,
                     style="filled,dashed" if isinstance(n, Source) else "rounded,filled,dashed")
        out.append(f"  {ids[n]}{attrs(**a)};")
    for n in nodes + removed:
        names = _input_names(n)
        for i, child in enumerate(n.inputs):
            if child not in ids:
                continue
            e: dict[str, Any] = {"label": names[i] if names else None}
            if n not in present:
                e.update(color=REMOVED_LINE, style="dashed")
            elif n in added:
                e.update(color=ADDED_LINE)
            out.append(f"  {ids[child]} -> {ids[n]}{attrs(**e)};")
    if sinks:
        out.append("  {rank=same; " + " ".join(ids[s] for s in roots) + "}")
    out.append("}")
    return "\n".join(out) + "\n"


# ---- numbers ----------------------------------------------------------------------------------
def count(v: float | None) -> str:
    """``12.3k``, ``10M``: a count for a label."""
    if v is None:
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def seconds(v: float | None) -> str:
    if v is None:
        return "?"
    for unit, scale in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if v >= scale:
            return f"{v / scale:.3g}{unit}"
    for unit, scale in (("ms", 1e3), ("us", 1e6)):
        if v * scale >= 1:
            return f"{v * scale:.3g}{unit}"
    return "0s" if v == 0 else f"{v * 1e9:.3g}ns"


def size(v: float | None) -> str:
    if v is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.0f}B"
