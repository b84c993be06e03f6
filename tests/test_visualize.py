"""Pictures (ir/dot.py): DOT text and SVG of plans, placements and deployments, and the
rich reprs a notebook shows.

The DOT text is read back by a small parser below (node ids, labels, edges), so each
test asserts on what a picture draws, not on incidental text; where Graphviz's ``dot``
is installed (in CI it must be: .ci/run installs it) the text is also drawn and the
SVG parsed as XML.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import relplan as rp
from relplan.compiler.plan import Plan
from relplan.ir import dot as dotmod
from relplan.ir import types as T
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.graph import walk
from relplan.ir.nodes import Filter, Join, Sink, Source
from relplan.ir.schema import Schema
from relplan.rules.cardinality import estimate

# The placement tests' source, features and statistics: the pictures draw the plans those tests place.
from test_placement import STATS, features, payment_count

ROOT = Path(__file__).resolve().parent.parent

KNOBS = rp.Knobs(max_staleness="5m", max_missed=0.001)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return rp.compile(features())


@pytest.fixture(scope="module")
def placed(plan: Plan) -> Plan:
    return rp.optimize(plan, statistics=STATS, knobs=KNOBS)


# ---- reading DOT back ---------------------------------------------------------------------------
_NODE = re.compile(r"^\s*(\w+) \[(.*)\];$")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$")


def _attr(attrs: str, name: str) -> str | None:
    m = re.search(rf"(?:^|, ){name}=(<.*>|\"(?:[^\"\\]|\\.)*\"|[\w.#]+)(?=, \w+=|$)", attrs)
    if m is None:
        return None
    v = m.group(1)
    return v[1:-1] if v[0] in "<\"" else v


def _text(label: str) -> str:
    """An HTML-like label's text: one line per <BR/>, markup dropped, entities decoded."""
    lines = re.split(r"<BR[^>]*/>", label)
    return "\n".join(html.unescape(re.sub(r"<[^>]+>", "", ln)) for ln in lines).strip()


def parse(dot: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """Nodes (id -> attrs, 'text': the label's text) and edges (from, to, attrs) of DOT text."""
    nodes: dict[str, dict[str, str]] = {}
    edges = []
    for line in dot.splitlines():
        if m := _EDGE.match(line):
            a = m.group(3) or ""
            edges.append((m.group(1), m.group(2), {k: v for k in ("label", "color", "style") if (v := _attr(a, k)) is not None}))
        elif (m := _NODE.match(line)) and m.group(1) not in ("graph", "node", "edge"):
            a = m.group(2)
            info = {k: v for k in ("label", "shape", "fillcolor", "color", "style", "tooltip", "peripheries") if (v := _attr(a, k)) is not None}
            info["text"] = _text(info.get("label", ""))
            nodes[m.group(1)] = info
    return nodes, edges


def with_text(nodes: dict[str, dict[str, str]], *needles: str) -> list[str]:
    return [i for i, n in nodes.items() if all(s in n["text"] for s in needles)]


def draws(dot: str) -> ET.Element | None:
    """The SVG drawn from ``dot``, parsed; None where dot is not installed (outside CI)."""
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is not installed, but .ci/run installs it in CI")
        return None
    return ET.fromstring(dotmod.render_svg(dot))


def svg_text(root: ET.Element) -> str:
    return "\n".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))


# ---- plans ----------------------------------------------------------------------------------------
def test_every_distinct_node_is_drawn_once_and_shared_subplans_once(plan: Plan) -> None:
    dot = plan.to_dot()
    nodes, edges = parse(dot)
    assert len(nodes) == len(walk(plan.outputs))  # one DOT node per distinct IR node
    (src,) = with_text(nodes, "Source")
    assert "r0 (used 2x)" in nodes[src]["text"]  # named as explain() names it
    assert sorted(v for u, v, _ in edges if u == src) == sorted(
        with_text(nodes, "WindowAggregate", "(t-1h, t]") + with_text(nodes, "TimeWindowAggregate")
    )
    sinks = with_text(nodes, "Sink")
    assert len(sinks) == 2 and all(nodes[s]["peripheries"] == "2" and nodes[s]["fillcolor"] == dotmod.SINK_FILL for s in sinks)
    assert all(nodes[i].get("peripheries") is None for i in nodes if i not in sinks)
    assert len(edges) == sum(len(n.inputs) for n in walk(plan.outputs))
    assert dot == rp.compile(features()).to_dot()  # deterministic


def test_equal_subplans_built_apart_are_one_node_with_its_users() -> None:
    src = Source("T", Schema.of([("k", T.Int64), ("v", T.Float64), ("ts", T.Timestamp)]), event_time="ts")

    def failed() -> Filter:  # a new, equal object each call
        return Filter(src, Binary(">", Column("v", T.Float64), Literal(1.0)))

    a, b = failed(), failed()
    assert a is not b and a == b
    joined = Join(a, Source("U", Schema.of([("k2", T.Int64)])), "inner", (("k", "k2"),))
    p = Plan((Sink(a, "x"), Sink(b, "y"), Sink(joined, "z")))
    nodes, edges = parse(p.to_dot())
    (f,) = with_text(nodes, "Filter", "v > 1.0")
    assert "r0 (used 3x)" in nodes[f]["text"]
    users = sorted(nodes[v]["text"].splitlines()[:2] for u, v, _ in edges if u == f)
    assert [u[0] for u in users] == ["Join", "Sink", "Sink"] and [u[1] for u in users[1:]] == ["x", "y"]
    # A join's edges say which input is which.
    (j,) = with_text(nodes, "Join")
    assert sorted(e["label"] for u, v, e in edges if v == j) == ["left", "right"]
    assert draws(p.to_dot()) is None or "Filter" in svg_text(draws(p.to_dot()))  # type: ignore[arg-type]


def test_schema_on_demand(plan: Plan) -> None:
    plain, _ = parse(plan.to_dot())
    full, _ = parse(plan.to_dot(schema=True))
    (tw_plain,) = with_text(plain, "TimeWindowAggregate")
    (tw_full,) = with_text(full, "TimeWindowAggregate")
    assert "window_start: Timestamp" not in plain[tw_plain]["text"]
    lines = full[tw_full]["text"].splitlines()
    assert lines[-4:] == ["account_id: Int64", "window_start: Timestamp", "window_end: Timestamp", "daily_spend_tumble_1d: Float64"]
    (src,) = with_text(full, "Source")
    assert "merchant: String" in full[src]["text"] and "daily_spend" not in full[src]["text"]


def test_a_wide_schema_and_long_details_are_cut_with_the_whole_in_the_tooltip() -> None:
    feats = [payment_count(window=rp.sliding(f"{i + 1}m"), name=f"count_{i}") for i in range(60)]
    nodes, _ = parse(rp.compile(feats).to_dot(schema=True))
    (project,) = with_text(nodes, "Project")
    lines = nodes[project]["text"].splitlines()
    details = [ln for ln in lines[1:] if ":" not in ln and "more columns" not in ln]
    assert len(details) == dotmod.DETAIL_LINES and details[-1].endswith("…")
    assert all(len(ln) <= dotmod.DETAIL_WIDTH for ln in details)
    assert lines[-1] == f"… and {65 - dotmod.SCHEMA_LINES} more columns"
    assert "count_59" in nodes[project]["tooltip"] and "count_59" not in nodes[project]["text"]


def test_before_and_after_names_what_the_optimizer_added_and_removed(plan: Plan) -> None:
    opt = rp.optimize(plan)
    old, new = set(walk(plan.outputs)), set(walk(opt.outputs))
    dot = opt.to_dot(before=plan)
    nodes, edges = parse(dot)
    added = [i for i, n in nodes.items() if n.get("fillcolor") == dotmod.ADDED_FILL]
    removed = [i for i, n in nodes.items() if n.get("fillcolor") == dotmod.REMOVED_FILL]
    assert len(added) == len(new - old) == 5 and len(removed) == len(old - new) == 8
    assert len(nodes) == len(old | new)
    assert all("dashed" in nodes[i]["style"] and "- removed by " in nodes[i]["text"] for i in removed)
    (shared,) = with_text(nodes, "WindowAggregate", "frames=[")  # the four windows, merged
    assert shared in added and "+ added by share_windows" in nodes[shared]["text"]
    merged_away = with_text(nodes, "WindowAggregate", "frame=(")
    assert sorted(merged_away) == sorted(i for i in removed if nodes[i]["text"].startswith("WindowAggregate")) and len(merged_away) == 4
    assert all("- removed by share_windows" in nodes[i]["text"] for i in merged_away)
    (old_project,) = with_text(nodes, "Project", "payment_count_30d")
    assert "- removed by merge_projections" in nodes[old_project]["text"]
    # Removed nodes keep the edges from their inputs, dashed red.
    assert all(e.get("style") == "dashed" for u, v, e in edges if v in removed)
    assert sum(1 for u, v, e in edges if v in removed) == sum(len(n.inputs) for n in old - new)
    # The same picture from the optimized plan's own trace, without the plan before.
    assert opt.to_dot(changes=True) == dot
    # No change, no colours.
    same, _ = parse(plan.to_dot(before=plan))
    assert not any(n.get("fillcolor") in (dotmod.ADDED_FILL, dotmod.REMOVED_FILL) for n in same.values())
    with pytest.raises(rp.RelplanError, match="not optimized"):
        plan.to_dot(changes=True)
    with pytest.raises(rp.RelplanError, match="takes an earlier rp.Plan"):
        opt.to_dot(before=plan.outputs)  # type: ignore[arg-type]


def test_statistics_annotate_estimated_rows_costs_and_state(plan: Plan) -> None:
    nodes, _ = parse(plan.to_dot(statistics=STATS))
    est = estimate(plan.outputs, STATS)
    by_text = {n["tooltip"]: n["text"] for n in nodes.values()}
    for n, e in est.items():
        assert f"rows ≈ {dotmod.count(e.rows)}" in by_text[f"{n.kind} {n.details()}".strip()]
    (src,) = with_text(nodes, "Source")
    assert "rows ≈ 10M" in nodes[src]["text"] and "duckdb ≈ 100ms" in nodes[src]["text"]  # 5 columns x 2 ns x 10M
    (tw,) = with_text(nodes, "TimeWindowAggregate")
    assert "rows ≈ 158k" in nodes[tw]["text"] and "stream state ≈ 4.8MB" in nodes[tw]["text"]
    assert "estimated: a duckdb run ≈" in plan.to_dot(statistics=STATS).split("\n", 7)[5]
    unknown, _ = parse(plan.to_dot(statistics=rp.Statistics({})))
    assert all("rows ≈ ?" in n["text"] for n in unknown.values())
    assert "rows ≈" not in plan.to_dot()
    with pytest.raises(rp.RelplanError, match="rp.Statistics"):
        plan.to_dot(statistics={"Payments": 1})  # type: ignore[arg-type]


# ---- placement and deployment ------------------------------------------------------------------------
def test_placement_shows_the_chosen_and_the_rejected_with_the_knob(placed: Plan) -> None:
    placement = placed.placement
    assert placement is not None
    nodes, edges = parse(placement.to_dot())
    assert len(nodes) == sum(1 + len(f.alternatives) for f in placement.features)
    for f in placement.features:
        (fid,) = [i for i, n in nodes.items() if n["text"].split("\n")[0] == f.feature]
        assert f"decided by {f.decided_by}" in nodes[fid]["text"].replace("\n", " ")
        out = {v: e for u, v, e in edges if u == fid}
        assert len(out) == len(f.alternatives)
        for a in f.alternatives:
            (aid,) = [v for v in out if nodes[v]["text"].split("\n")[0] == (a.name if a.refused else a.describe())]
            label = out[aid]["label"]
            if a is f.chosen:
                assert label == "chosen" and nodes[aid]["fillcolor"] == dotmod.ADDED_FILL
            elif a.refused:
                assert label == "not applicable" and "not applicable:" in nodes[aid]["text"]
            elif a.violates:
                assert label == "ruled out by " + ", ".join(dict.fromkeys(v.split()[0] for v in a.violates))
                assert all(f"ruled out by {v}" in nodes[aid]["text"].replace("\n", " ") for v in a.violates)
            else:
                assert label == "lost on priority=cost"
    # The example of the placement's own explain(): batch too stale, plain streaming loses events.
    first, _ = parse(placement.to_dot())
    (batch,) = with_text(first, "batch (duckdb, schedule=1m)", "cost 0.0855 core-h/day")
    assert "ruled out by max_staleness 5m (latency 11m)" in first[batch]["text"]
    (stream,) = with_text(first, "streaming (flink, allowed_lateness=0)", "69.1MB")
    assert "ruled out by max_missed 0.1% (missed 10%)" in first[stream]["text"]
    (chosen,) = with_text(first, "streaming_consistent (flink, allowed_lateness=2m)", "71.2MB")
    assert "chosen: decided by max_staleness (ruled out batch), max_missed (ruled out streaming)" in first[chosen]["text"].replace("\n", " ")


def test_forced_and_lost_alternatives_say_why() -> None:
    p = rp.optimize(rp.compile([payment_count(window=rp.sliding("1h"))]), statistics=STATS, knobs=rp.Knobs(placement="batch"))
    nodes, edges = parse(p.placement.to_dot())  # type: ignore[union-attr]
    labels = sorted(e["label"] for _, _, e in edges)
    assert labels == ["chosen", "not applicable", "not forced", "not forced"]
    cheap = rp.optimize(rp.compile([payment_count(window=rp.sliding("1h"))]), statistics=STATS, knobs=rp.Knobs())
    assert "lost on priority=cost" in {e["label"] for _, _, e in parse(cheap.placement.to_dot())[1]}  # type: ignore[union-attr]


def test_deployment_draws_its_jobs(placed: Plan) -> None:
    deployment = placed.deployment()
    dot = deployment.to_dot()
    nodes, edges = parse(dot)
    g = deployment.graph
    assert len(nodes) == g.number_of_nodes() and len(edges) == g.number_of_edges()
    for job in deployment.jobs:
        (jid,) = [i for i, n in nodes.items() if n["text"].split("\n")[0] == job.name and n["shape"] == "box"]
        when = f"every {job.schedule}" if job.schedule else {"streaming": "continuous", "serving": "on read"}[job.kind]
        assert f"{job.kind} on {job.engine}, {when}" in nodes[jid]["text"]
        assert nodes[jid]["tooltip"].startswith(job.sql[:40].replace('"', '\\"').replace("\n", "\\n"))
        writes = [v for u, v, _ in edges if u == jid]
        assert [nodes[v]["text"] for v in writes] == [job.writes]
        reads = sorted(nodes[u]["text"].split("\n")[0] for u, v, _ in edges if v == jid)
        assert reads == sorted(job.reads)
    (src,) = [i for i, n in nodes.items() if n["text"] == "Payments\nsource"]
    assert nodes[src]["fillcolor"] == dotmod.SOURCE_FILL
    assert "batch on duckdb, every 1d" in dot and "serving on duckdb, on read" in dot and "streaming on flink, continuous" in dot


# ---- SVG and the reprs -------------------------------------------------------------------------------------
def test_svg_is_xml_with_the_labels(plan: Plan, placed: Plan) -> None:
    if draws("digraph { a }") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    opt = rp.optimize(plan)
    svg = opt.visualize(before=plan, schema=True, statistics=STATS)
    assert svg._repr_svg_() == svg.data == str(svg) and svg.dot == opt.to_dot(before=plan, schema=True, statistics=STATS)
    text = svg_text(ET.fromstring(svg.data))
    for label in ("WindowAggregate", "Payments", "+ added by share_windows", "- removed by merge_projections", "rows ≈ 10M", "amt: Float64"):
        assert label in text, label
    assert placed.placement is not None
    text = svg_text(ET.fromstring(placed.placement.visualize().data))
    assert "ruled out by max_missed 0.1% (missed 10%)" in text and "payment_count_30d" in text
    text = svg_text(ET.fromstring(placed.deployment().visualize().data))
    assert "Payments__max_amount_7d__steps" in text and "batch on duckdb, every 1d" in text
    # The notebook reprs draw the same pictures.
    assert plan._repr_svg_() == dotmod.render_svg(plan.to_dot())
    assert plan._repr_html_().startswith('<div class="relplan-picture"><svg')
    assert ET.fromstring(placed.deployment()._repr_svg_()) is not None  # type: ignore[arg-type]


def test_odd_names_and_literals_are_escaped() -> None:
    odd = 'a"b; DROP TABLE x -- <b>&amp;\\n\x01'
    src = Source('we"ird<src>', Schema.of([(odd, T.String), ("ts", T.Timestamp)]), event_time="ts")
    p = Plan((Sink(Filter(src, Binary("=", Column(odd, T.String), Literal("<&'\">"))), "out<1>"),))
    dot = p.to_dot(schema=True)
    nodes, _ = parse(dot)
    assert "\x01" not in dot and "\\x01" in dot
    (f,) = with_text(nodes, "Filter")
    assert "<&'" in nodes[f]["text"] and odd.replace("\x01", "\\x01") in nodes[f]["text"].replace("\n", "")
    root = draws(dot)
    if root is not None:
        text = svg_text(root)
        assert "out<1>" in text and "<&'" in text and "\\x01" in text


def test_without_dot_visualize_names_the_package_and_reprs_fall_back(plan: Plan, placed: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    for visualize in (plan.visualize, placed.placement.visualize, placed.deployment().visualize):  # type: ignore[union-attr]
        with pytest.raises(rp.UnsupportedError, match=r"install the Debian package graphviz \(apt-get install graphviz"):
            visualize()
    for obj, text in ((plan, plan.explain()), (placed.placement, placed.placement.explain()), (placed.deployment(), placed.deployment().explain())):  # type: ignore[union-attr]
        assert obj._repr_svg_() is None  # type: ignore[union-attr]
        assert obj._repr_html_() == f'<pre class="relplan-text">{html.escape(text)}</pre>'  # type: ignore[union-attr]
    assert "&#x27;failed&#x27;" in plan._repr_html_()  # explain's text, escaped


def test_reprs_never_raise(plan: Plan, placed: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: object, **k: object) -> str:
        raise RuntimeError("dot crashed")

    monkeypatch.setattr(dotmod, "render_svg", broken)
    assert plan._repr_svg_() is None and placed.deployment()._repr_svg_() is None
    assert plan._repr_html_().startswith("<pre") and "WindowAggregate" in plan._repr_html_()
    monkeypatch.setattr(Plan, "explain", broken)
    monkeypatch.setattr(Plan, "to_dot", broken)
    assert plan._repr_svg_() is None
    assert plan._repr_html_() == '<pre class="relplan-text">(RuntimeError: dot crashed)</pre>'


def test_a_plan_too_big_for_a_notebook_shows_as_text(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dotmod, "REPR_MAX_NODES", len(walk(plan.outputs)) - 1)
    assert plan._repr_svg_() is None and plan._repr_html_().startswith("<pre")
    monkeypatch.setattr(dotmod, "REPR_MAX_NODES", len(walk(plan.outputs)))
    if shutil.which("dot"):
        assert plan._repr_svg_() is not None


def test_the_text_is_the_same_under_another_hash_seed(plan: Plan, placed: Plan) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_visualize as t, relplan as rp\n"
        "p = rp.compile(t.features()); q = rp.optimize(p, statistics=t.STATS, knobs=t.KNOBS)\n"
        "print(rp.optimize(p).to_dot(before=p, schema=True, statistics=t.STATS) + q.placement.to_dot() + q.deployment().to_dot())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "tests")], capture_output=True, text=True, env=env, check=True)
    here = rp.optimize(plan).to_dot(before=plan, schema=True, statistics=STATS)
    assert done.stdout == here + placed.placement.to_dot() + placed.deployment().to_dot() + "\n"  # type: ignore[union-attr]
