"""Column-level lineage of features and deployed jobs: what reads what, derived from the IR.

    graph = lineage_graph(features, jobs={"tx_hourly": ["failed_amount_1h"]})
    graph.reads("failed_amount_1h")          # [("Transactions", "account_id", {"rows"}), ...]
    graph.readers("Transactions", "status")  # the features whose rows it decides
    graph.jobs_affected("failed_amount_1h")  # ["tx_hourly"]
    print(graph.to_text())

Each feature is compiled on its own (``compile([f])``) and its output columns'
lineage is read off the plan by ``relplan.ir.lineage`` (no second description of
what a feature reads: the IR is the one source). A feature over merged rows reads
columns of every source its merge joined. The graph has these layers:

    ("column", source, column) --roles--> ("feature", name) --> ("job", name)
    ("feature", input) --value--> ("feature", derived)       # rp.derived: its inputs
    ("request", request, field) --value--> ("feature", derived)

A derived feature (``rp.derived``) is not compiled: its values are its expression
over its inputs' values and the request's fields, so its edges come from its input
features (``columns``: the input's output columns it reads) and from request-field
nodes, their own layer (they are no source's columns: the spine's in training data,
the request's when served). Its source columns (``reads``) are its inputs', and a
change to an input reaches it and its jobs (``downstream``, ``jobs_affected``).

An edge from a source column to a feature carries ``roles``: ``"value"`` when the
column's values reach the feature's values, ``"rows"`` when it decides which rows
or partitions count (filters, keys, event time), or both; and ``columns``, the
feature's output columns that read it (a feature of ``.agg(...)`` has several). An
edge from a feature to a job says the job computes or serves it (roles
``{"value"}``: the job's output holds the feature's values).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from relplan.ir.dot import quote as _q
from relplan.ir.dot import render_svg
from relplan.ir.errors import FeatureError, RelplanError, SchemaError
from relplan.ir.lineage import ROLES, VALUE, output_lineage

if TYPE_CHECKING:
    from relplan.compiler.transformation import Feature

Node = tuple[str, ...]
LAYERS = ("column", "request", "feature", "job")
_JOB_ROLES = frozenset({VALUE})


def lineage_graph(features: Iterable[Feature], jobs: Mapping[str, Iterable[str]] | None = None) -> LineageGraph:
    """The lineage of ``features`` (source columns -> features) and of ``jobs``
    (job name -> the names of the features it computes or serves)."""
    from relplan.compiler.compile import compile as compile_features
    from relplan.compiler.derived import DerivedFeature
    from relplan.compiler.transformation import Feature

    g = nx.DiGraph()
    feats: dict[str, Feature | DerivedFeature] = {}

    def add(f: Any) -> None:
        if not isinstance(f, (Feature, DerivedFeature)):
            raise FeatureError(f"lineage_graph() takes features, got {type(f).__name__}: {f!r}")
        if f.name in feats and feats[f.name] != f:
            raise FeatureError(f"two different features are named {f.name!r}", where=f.defined_at)
        feats[f.name] = f
        if isinstance(f, DerivedFeature):
            for g_ in f.inputs:  # its inputs are part of it: in the graph even if not given
                if g_.name not in feats:
                    add(g_)

    for f in features:
        add(f)
    for name in sorted(feats):
        f = feats[name]
        if isinstance(f, DerivedFeature):
            _add_derived(g, f)
            continue
        lineage = output_lineage(compile_features([f]))
        by_column = {col: deps for (_, col), deps in lineage.items()}
        fnode = ("feature", name)
        g.add_node(fnode, layer="feature", name=name, columns=f.columns)
        reads: dict[tuple[str, str], tuple[set[str], list[str]]] = {}
        for col in f.columns:
            for src_col, roles in by_column[col].items():
                seen = reads.setdefault(src_col, (set(), []))
                seen[0].update(roles)
                seen[1].append(col)
        _add_source_columns(g, f)
        for (src, col), (roles, cols) in reads.items():
            g.add_edge(("column", src, col), fnode, roles=frozenset(roles), columns=tuple(cols))
    for job, names in sorted((jobs or {}).items()):
        jnode = ("job", job)
        g.add_node(jnode, layer="job", name=job)
        for fname in [names] if isinstance(names, str) else names:
            if fname not in feats:
                raise FeatureError(
                    f"job {job!r} names feature {fname!r}, which is not among the features given"
                    + _close(fname, feats)
                )
            g.add_edge(("feature", fname), jnode, roles=_JOB_ROLES)
    return LineageGraph(g)


def _add_source_columns(g: nx.DiGraph, f: Feature) -> None:
    """Every column of the feature's sources (its own, and those a merge joined), read or
    not (``readers`` of an unread column is [])."""
    from relplan.ir.graph import walk
    from relplan.ir.nodes import Source

    for src in [f.source.node()] if f.body.rows is None else [n for n in walk([f.body.rows]) if isinstance(n, Source)]:
        for col in src.schema.names:
            g.add_node(("column", src.name, col), layer="column", source=src.name, column=col)


def _add_derived(g: nx.DiGraph, d: Any) -> None:
    """A derived feature: edges from its inputs (the columns of theirs it reads) and its request fields."""
    fnode = ("feature", d.name)
    g.add_node(fnode, layer="feature", name=d.name, columns=d.columns, derived=True)
    used = d.expr.columns()
    for f in d.inputs:
        cols = tuple(c for c in f.columns if c in used) or f.columns
        g.add_edge(("feature", f.name), fnode, roles=frozenset({VALUE}), columns=cols)
    for r in d.request:
        rnode = ("request", r.request, r.name)
        g.add_node(rnode, layer="request", request=r.request, field=r.name, dtype=r.dtype.name)
        g.add_edge(rnode, fnode, roles=frozenset({VALUE}), columns=(r.name,))


def _close(name: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""


def _roles(roles: Iterable[str]) -> list[str]:
    return [r for r in ROLES if r in roles]


class LineageGraph:
    """Source columns -> features -> jobs, as a networkx DiGraph (``.graph``), with queries and renderers."""

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph

    # ---- what is in it -------------------------------------------------------------------
    def _layer(self, layer: str) -> list[Node]:
        return sorted(n for n in self.graph if n[0] == layer)

    @property
    def features(self) -> list[str]:
        return [n[1] for n in self._layer("feature")]

    @property
    def jobs(self) -> list[str]:
        return [n[1] for n in self._layer("job")]

    @property
    def sources(self) -> list[str]:
        return sorted({n[1] for n in self._layer("column")})

    def columns(self, source: str) -> list[str]:
        """The columns of ``source`` the graph knows (every column of a source some feature reads)."""
        self._source(source)
        return [n[2] for n in self._layer("column") if n[1] == source]

    def _feature(self, name: str) -> Node:
        node = ("feature", name)
        if node not in self.graph:
            known = self.features
            raise FeatureError(f"no feature {name!r} in the lineage graph" + (_close(name, known) if known else " (it has no features)"))
        return node

    def _source(self, source: str) -> None:
        if source not in self.sources:
            raise SchemaError(f"no source {source!r} in the lineage graph" + _close(source, self.sources))

    def _column(self, source: str, column: str) -> Node:
        node = ("column", source, column)
        if node not in self.graph:
            self._source(source)
            raise SchemaError(f"source {source!r} has no column {column!r}" + _close(column, self.columns(source)))
        return node

    def _job(self, name: str) -> Node:
        node = ("job", name)
        if node not in self.graph:
            raise RelplanError(f"no job {name!r} in the lineage graph" + _close(name, self.jobs))
        return node

    def _node(self, node: Any) -> Node:
        """A graph node from a node tuple, or a bare feature name."""
        if isinstance(node, str):
            return self._feature(node)
        node = tuple(node)
        if node and node[0] == "column" and len(node) == 3:
            return self._column(node[1], node[2])
        if node and node[0] == "request" and len(node) == 3:
            if node not in self.graph:
                raise RelplanError(f"no request field {node[1]}.{node[2]} in the lineage graph")
            return node
        if node and node[0] == "feature" and len(node) == 2:
            return self._feature(node[1])
        if node and node[0] == "job" and len(node) == 2:
            return self._job(node[1])
        raise RelplanError(
            f"{node!r} is no lineage node: use ('column', source, column), ('feature', name) or ('job', name)"
        )

    # ---- queries --------------------------------------------------------------------------
    def reads(self, feature: str) -> list[tuple[str, str, frozenset[str]]]:
        """What ``feature`` reads: (source, column, roles), sorted; a derived feature's are
        its inputs' (it reads their values, so their roles carry over)."""
        node = self._feature(feature)
        found: dict[tuple[str, str], set[str]] = {}
        for u in [node, *self._inputs(node)]:
            for c, _, roles in self.graph.in_edges(u, data="roles"):
                if c[0] == "column":
                    found.setdefault((c[1], c[2]), set()).update(roles)
        return sorted((s, c, frozenset(r)) for (s, c), r in found.items())

    def _inputs(self, node: Node) -> list[Node]:
        """The features ``node`` reads, transitively (derived features' inputs)."""
        return sorted(n for n in nx.ancestors(self.graph, node) if n[0] == "feature")

    def inputs(self, feature: str) -> list[str]:
        """The features a derived feature reads ([] for any other feature)."""
        node = self._feature(feature)
        return sorted(u[1] for u, _ in self.graph.in_edges(node) if u[0] == "feature")

    def request_fields(self, feature: str) -> list[tuple[str, str]]:
        """The request fields (request, field) a derived feature reads."""
        node = self._feature(feature)
        return sorted((u[1], u[2]) for u, _ in self.graph.in_edges(node) if u[0] == "request")

    def derived_from(self, feature: str) -> list[str]:
        """The derived features reading ``feature``, transitively: a change to it reaches them."""
        node = self._feature(feature)
        return sorted(n[1] for n in nx.descendants(self.graph, node) if n[0] == "feature")

    def readers(self, source: str, column: str, *, role: str | None = None, derived: bool = True) -> list[str]:
        """The features reading column ``column`` of ``source`` (with ``role`` among their roles, if
        given), and (``derived``) the derived features reading those, whose values depend on it too."""
        if role is not None and role not in ROLES:
            raise RelplanError(f"unknown lineage role {role!r}; use one of {', '.join(ROLES)}")
        node = self._column(source, column)
        direct = {v for _, v, roles in self.graph.out_edges(node, data="roles") if role is None or role in roles}
        found = set(direct)
        if derived:
            for v in direct:
                found |= {n for n in nx.descendants(self.graph, v) if n[0] == "feature"}
        return sorted(v[1] for v in found)

    def jobs_affected(self, feature: str) -> list[str]:
        """The deployed jobs that would change if ``feature`` changed."""
        node = self._feature(feature)
        return sorted(n[1] for n in nx.descendants(self.graph, node) if n[0] == "job")

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request field (request, field) a derived feature of the graph reads."""
        return [(n[1], n[2]) for n in self._layer("request")]

    def features_of_source(self, source: str) -> list[str]:
        """The features reading any column of ``source``."""
        self._source(source)
        return sorted({v[1] for u, v in self.graph.edges if u[0] == "column" and u[1] == source and v[0] == "feature"})

    def downstream(self, node: Any) -> list[Node]:
        """Every node reachable from ``node`` (a node tuple, or a feature name), sorted."""
        return sorted(nx.descendants(self.graph, self._node(node)))

    def upstream(self, node: Any) -> list[Node]:
        """Every node ``node`` is reachable from, sorted."""
        return sorted(nx.ancestors(self.graph, self._node(node)))

    def subgraph_for(self, feature: str) -> LineageGraph:
        """Only ``feature``, the source columns it reads and the jobs that compute it."""
        node = self._feature(feature)
        keep = {node} | nx.ancestors(self.graph, node) | nx.descendants(self.graph, node)
        return LineageGraph(self.graph.subgraph(keep).copy())

    def _view(self, feature: str | None) -> LineageGraph:
        return self if feature is None else self.subgraph_for(feature)

    # ---- rendering ------------------------------------------------------------------------
    def to_text(self, feature: str | None = None) -> str:
        """A deterministic, readable tree: per feature what it reads and which jobs run it;
        per source column which features read it."""
        g = self._view(feature)
        lines = [f"features ({len(g.features)}):"]
        for name in g.features:
            lines.append(f"  {name}")
            inputs, fields = g.inputs(name), g.request_fields(name)
            if inputs:
                lines.append(f"    inputs {', '.join(inputs)}")
            if fields:
                lines.append(f"    request {', '.join(f'{r}.{c}' for r, c in fields)}")
            reads = g.reads(name)
            width = max((len(f"{s}.{c}") for s, c, _ in reads), default=0)
            for i, (s, c, roles) in enumerate(reads):
                head = "reads" if i == 0 else "     "
                lines.append(f"    {head} {f'{s}.{c}':<{width}}  {'+'.join(_roles(roles))}")
            jobs = g.jobs_affected(name)
            lines.append(f"    jobs  {', '.join(jobs) if jobs else '(none)'}")
        lines.append(f"sources ({len(g.sources)}):")
        for src in g.sources:
            lines.append(f"  {src}")
            cols = g.columns(src)
            width = max(len(c) for c in cols)
            for c in cols:
                edges = sorted(
                    (v[1], roles) for _, v, roles in g.graph.out_edges(("column", src, c), data="roles")
                )
                readers = ", ".join(f"{n} ({'+'.join(_roles(r))})" for n, r in edges) or "(read by no feature)"
                lines.append(f"    {c:<{width}}  <- {readers}")
        if g.jobs:
            lines.append(f"jobs ({len(g.jobs)}):")
            for job in g.jobs:
                feats = sorted(u[1] for u, _ in g.graph.in_edges(("job", job)))
                lines.append(f"  {job}: {', '.join(feats) if feats else '(no features)'}")
        return "\n".join(lines)

    def to_dict(self, feature: str | None = None) -> dict[str, Any]:
        """Nodes and edges as plain data; a node is its tuple as a list (``["column", source, column]``)."""
        g = self._view(feature).graph
        nodes = []
        for n in sorted(g):
            item: dict[str, Any] = {"id": list(n), "layer": n[0]}
            if n[0] == "column":
                item.update(source=n[1], column=n[2])
            elif n[0] == "request":
                item.update(request=n[1], field=n[2])
            else:
                item["name"] = n[1]
            if n[0] == "feature":
                item["columns"] = list(g.nodes[n].get("columns", ()))
            nodes.append(item)
        edges = []
        for u, v in sorted(g.edges):
            data = g.edges[u, v]
            edge: dict[str, Any] = {"from": list(u), "to": list(v), "roles": _roles(data.get("roles", ()))}
            if "columns" in data:
                edge["columns"] = sorted(data["columns"])
            edges.append(edge)
        return {"nodes": nodes, "edges": edges}

    def to_json(self, feature: str | None = None, **dumps: Any) -> str:
        """``to_dict()`` as JSON: keys sorted, so the same graph gives the same text."""
        return json.dumps(self.to_dict(feature), **({"indent": 2, "sort_keys": True, "ensure_ascii": False} | dumps))

    def to_dot(self, feature: str | None = None) -> str:
        """Graphviz DOT text (no Python package needed): one cluster per layer, and one
        per source inside the columns'; value edges solid, rows-only edges dashed; ids
        quoted (``"column:Transactions.amt"``, ``"feature:name"``, ``"job:name"``)."""
        g = self._view(feature)
        ids = _ids(g.graph)
        out = [
            "digraph lineage {",
            "  rankdir=LR;",
            '  graph [fontname="Helvetica"];',
            '  node [shape=box, fontname="Helvetica", fontsize=11];',
            '  edge [fontname="Helvetica", fontsize=9];',
            "  subgraph cluster_columns {",
            f"    label={_q('source columns')};",
        ]
        for i, src in enumerate(g.sources):
            out += [f"    subgraph cluster_source_{i} {{", f"      label={_q(src)};"]
            out += [f"      {ids['column', src, c]} [label={_q(c)}];" for c in g.columns(src)]
            out.append("    }")
        out.append("  }")
        if g.requests:
            out += ["  subgraph cluster_requests {", f"    label={_q('request fields')};"]
            out += [f"    {ids[n]} [label={_q(f'{n[1]}.{n[2]}')}, shape=note];" for n in g._layer("request")]
            out.append("  }")
        for layer, title, shape in (("feature", "features", "ellipse"), ("job", "jobs", "component")):
            out += [f"  subgraph cluster_{layer}s {{", f"    label={_q(title)};"]
            out += [f"    {ids[n]} [label={_q(n[1])}, shape={shape}];" for n in g._layer(layer)]
            out.append("  }")
        for u, v in sorted(g.graph.edges):
            roles = _roles(g.graph.edges[u, v].get("roles", ()))
            attrs = [] if v[0] == "job" else [f"label={_q('+'.join(roles))}"]
            if VALUE not in roles:
                attrs.append("style=dashed")
            out.append(f"  {ids[u]} -> {ids[v]}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
        out.append("}")
        return "\n".join(out) + "\n"

    def to_svg(self, feature: str | None = None) -> str:
        """SVG text, drawn by Graphviz's ``dot`` program (which must be installed)."""
        return render_svg(self.to_dot(feature), what="to_svg()", subject="the lineage graph")

    def __repr__(self) -> str:
        return f"<LineageGraph: {len(self.features)} features, {len(self.sources)} sources, {len(self.jobs)} jobs>"


def _ids(nodes: Iterable[Node]) -> dict[Node, str]:
    """DOT ids, quoted: ``column:Source.col``, ``feature:name``, ``job:name``; or, if
    names holding ``.`` make two of them alike, each node's tuple as JSON."""
    nodes = list(nodes)
    ids = {n: f"{n[0]}:{n[1]}.{n[2]}" if n[0] in ("column", "request") else f"{n[0]}:{n[1]}" for n in nodes}
    if len(set(ids.values())) < len(ids):
        ids = {n: json.dumps(list(n), ensure_ascii=False) for n in nodes}
    return {n: _q(i) for n, i in ids.items()}
