"""The deployment plan: a placed plan as a DAG of jobs, serializable to JSON.

Features placed alike (the same alternative, engine and settings, over the same
sources) share jobs again, so their windows are shared as in the batch plan:

- ``batch``: one job per output, every ``schedule``, on DuckDB
  (``CREATE OR REPLACE TABLE <output> AS SELECT ...``) or Spark (``DROP TABLE IF
  EXISTS``, then ``CREATE TABLE ... USING parquet AS SELECT ...``);
- ``streaming`` / ``streaming_consistent``: one Flink SQL script (SET, CREATE
  TABLE with the watermark of the allowed lateness, INSERT INTO, a statement set
  for several outputs), running continuously;
- ``hybrid``, per feature: a daily batch job for its steps, a Flink job for its
  current day and a serving job (DuckDB SQL) combining the two.

Nodes of the graph are tables (``table:<name>``: the sources and every job's
output) and jobs (``job:<name>``); edges run from the tables a job reads to it and
from it to the table it writes. ``run_locally(tables)`` runs every job here, in
the graph's order, on bounded data: the SQL of batch and serving jobs as it is on
DuckDB, the streaming jobs' plans on a local Flink (streaming mode).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import pyarrow as pa
import pyarrow.compute as pc

from relplan.backends.hybrid import split_hybrid, steps_select_sql
from relplan.backends.lookup_check import check_lookup_keys
from relplan.ir.errors import DataError, EngineError, UnsupportedError
from relplan.ir.graph import transform
from relplan.ir.nodes import Node, Sink, Source
from relplan.ir.printer import sources
from relplan.ir.windows import format_duration

if TYPE_CHECKING:
    from relplan.compiler.plan import Plan
    from relplan.ir.dot import SVG


@dataclass(frozen=True)
class Job:
    """One job: what it runs (``sql``, as it is), where, how often, what it reads and writes."""

    name: str
    kind: str  # "batch", "streaming" or "serving"
    engine: str  # "duckdb", "spark" or "flink"
    sql: str
    reads: tuple[str, ...]
    writes: str
    features: tuple[str, ...]
    schedule: str | None = None  # batch: "1h"; streaming and serving: continuous / on read
    plan: Sink | None = field(default=None, compare=False, repr=False)  # the IR it was emitted from

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "engine": self.engine, "schedule": self.schedule,
            "reads": list(self.reads), "writes": self.writes, "features": list(self.features), "sql": self.sql,
        }


@dataclass(frozen=True)
class Deployment:
    jobs: tuple[Job, ...]

    @property
    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for job in self.jobs:
            g.add_node(f"job:{job.name}", **job.to_dict(), node="job")
            for table in job.reads:
                g.add_node(f"table:{table}", node="table", name=table)
                g.add_edge(f"table:{table}", f"job:{job.name}")
            g.add_node(f"table:{job.writes}", node="table", name=job.writes)
            g.add_edge(f"job:{job.name}", f"table:{job.writes}")
        return g

    def to_dict(self) -> dict[str, Any]:
        return nx.node_link_data(self.graph, edges="edges")  # type: ignore[no-any-return]

    def to_json(self, **dumps: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **({"indent": 2} | dumps))

    def job(self, name: str) -> Job:
        for j in self.jobs:
            if j.name == name:
                return j
        raise DataError(f"no job {name!r}; the jobs are {[j.name for j in self.jobs]}")

    def explain(self) -> str:
        lines = []
        for name in nx.topological_sort(self.graph):
            if name.startswith("job:"):
                j = self.job(name[4:])
                when = f" every {j.schedule}" if j.schedule else ""
                lines.append(f"{j.kind} job {j.name} on {j.engine}{when}: {', '.join(j.reads)} -> {j.writes}  [{', '.join(j.features)}]")
        return "\n".join(lines)

    # ---- pictures (ir/dot.py) ---------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT text of the job DAG: tables (sources grey cylinders, job outputs
        white) and jobs (batch blue, streaming amber, serving green) with each job's
        kind, engine, schedule and features; edges from what a job reads to it and
        from it to the table it writes."""
        from relplan.ir import dot

        g = self.graph
        order = list(nx.lexicographical_topological_sort(g))
        ids = {n: f"n{i}" for i, n in enumerate(order)}
        kinds = [j.kind for j in self.jobs]
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("batch", "streaming", "serving") if k in kinds)
        out = dot.header("deployment", f"deployment: {len(self.jobs)} job{'s' if len(self.jobs) != 1 else ''} ({counts})", rankdir="LR")
        written = {j.writes for j in self.jobs}
        style = {"batch": ("#dbeafe", "#1d4ed8"), "streaming": ("#fef3c7", "#b45309"), "serving": (dot.ADDED_FILL, dot.ADDED_LINE)}
        for n in order:
            if n.startswith("job:"):
                j = self.job(n[4:])
                when = f"every {j.schedule}" if j.schedule else ("continuous" if j.kind == "streaming" else "on read")
                fill, line = style.get(j.kind, ("white", dot.MUTED))
                text = dot.label(j.name, [f"{j.kind} on {j.engine}, {when}"], ("muted", dot.wrap("features: " + ", ".join(j.features), 56, 4)))
                tip = j.sql if len(j.sql) <= dot.TOOLTIP_CHARS else j.sql[: dot.TOOLTIP_CHARS - 1] + "…"
                out.append(f"  {ids[n]}{dot.attrs(label=text, shape='box', style='rounded,filled', fillcolor=fill, color=line, penwidth=2, tooltip=tip)};")
            else:
                name = g.nodes[n]["name"]
                a: dict[str, Any]
                if name in written:
                    a = dict(shape="cylinder", style="filled", fillcolor="white", color=dot.MUTED)
                else:
                    a = dict(shape="cylinder", style="filled", fillcolor=dot.SOURCE_FILL, penwidth=1.5)
                text = dot.label(name, [] if name in written else ("muted", ["source"]))
                out.append(f"  {ids[n]}{dot.attrs(label=text, **a)};")
        for u, v in sorted(g.edges, key=lambda e: (order.index(e[0]), order.index(e[1]))):
            out.append(f"  {ids[u]} -> {ids[v]};")
        out.append("}")
        return "\n".join(out) + "\n"

    def visualize(self) -> SVG:
        """The job DAG drawn by Graphviz's ``dot`` (``to_dot``): an SVG that Jupyter shows
        (``.data``: its text); without ``dot``, an UnsupportedError naming the package."""
        from relplan.ir.dot import visualize

        return visualize(self.to_dot(), "Deployment.visualize()")

    def _repr_svg_(self) -> str | None:
        from relplan.ir.dot import repr_svg

        return repr_svg(self.to_dot)

    def _repr_html_(self) -> str:
        from relplan.ir.dot import repr_html

        return repr_html(self.to_dot, self.explain)

    def run_locally(
        self, tables: Mapping[str, Any], *, stream_engine: str = "flink", progress: bool | None = None, **stream_options: Any
    ) -> dict[str, pa.Table]:
        """Every job's output table by name, each job run here on bounded ``tables``
        (source name -> Arrow table or DataFrame) in the DAG's order: batch and
        serving SQL as it is on one DuckDB connection, streaming plans on
        ``stream_engine`` (Flink in streaming mode; its events fed in event-time
        order, as a stream delivers them; ``table_env=``/``session=`` a streaming
        TableEnvironment of yours). ``progress``: a bar of the jobs while it runs
        (default: on a terminal, for work of a second or more; see ``rp.set_progress``)."""
        import logging

        from relplan.compiler import progress as _progress

        log = logging.getLogger("relplan.deployment")
        with _progress.Steps("deployment", len(self.jobs), log, progress=progress) as steps:
            out = self._run_locally(tables, steps, stream_engine, stream_options)
        if steps.logged:
            log.info("deployment run locally: %d job(s) in %.1f ms (%s)", len(self.jobs), steps.elapsed_ms, steps.breakdown())
        return out

    def _run_locally(
        self, tables: Mapping[str, Any], steps: Any, stream_engine: str, stream_options: dict[str, Any]
    ) -> dict[str, pa.Table]:
        import duckdb

        from relplan.backends import get_backend
        from relplan.backends.arrow_io import conform_table, in_ir_types
        from relplan.backends.duckdb import _naive

        on_spark = [j.name for j in self.jobs if j.engine == "spark"]
        if on_spark:
            raise UnsupportedError(
                f"run_locally() runs batch jobs on DuckDB, but {on_spark} are Spark SQL: run them with spark.sql, "
                "or place with rp.Knobs(batch_engine='duckdb') to try the deployment here"
            )
        con = duckdb.connect()
        out: dict[str, pa.Table] = {}
        try:
            by_name = {s.name: s for j in self.jobs if j.plan is not None for s in sources(j.plan)}
            inputs = {}
            for name, src in by_name.items():
                if name not in tables:
                    raise DataError(f"no table given for source {name!r}: pass tables={{{name!r}: <pyarrow table>}}")
                inputs[name] = conform_table(src, tables[name])
                con.register(name, _naive(inputs[name]))
            # A lookup table with a duplicated key is refused before any job runs (as rp.execute does).
            check_lookup_keys([j.plan for j in self.jobs if j.plan is not None], inputs)
            for node in nx.topological_sort(self.graph):
                if not node.startswith("job:"):
                    continue
                job = self.job(node[4:])
                steps.step(f"{job.kind} job {job.name}")
                if job.plan is None and hasattr(job, "run_locally"):
                    # A job writing outside the DAG's tables (serving's online-store feed) runs itself.
                    out[job.writes] = job.run_locally(tables, stream_engine=stream_engine, **stream_options)
                    continue
                if job.kind == "streaming":
                    assert job.plan is not None
                    src_tables = {}
                    for s in sources(job.plan):
                        t = inputs[s.name]
                        src_tables[s.name] = t.take(pc.sort_indices(t, [(s.event_time, "ascending")])) if s.event_time else t
                    options = {"mode": "streaming", **stream_options} if stream_engine == "flink" else stream_options
                    backend = get_backend(stream_engine, **options)
                    if steps.shown:
                        backend.on_step = steps.note  # the engine's own steps: inputs, the job, fetching
                    result = backend.run((job.plan,), src_tables)[job.plan.name]
                    out[job.writes] = result
                    con.register(job.writes, _naive(result))
                    continue
                try:
                    if job.kind == "serving":
                        result = con.sql(job.sql).to_arrow_table()
                    else:
                        con.execute(job.sql)
                        result = con.sql(f'SELECT * FROM "{job.writes}"').to_arrow_table()
                except duckdb.Error as e:
                    raise EngineError(f"DuckDB failed on job {job.name!r}: {e}\nSQL:\n{job.sql}") from e
                if job.plan is not None:
                    result = in_ir_types(result, job.plan, "DuckDB")
                out[job.writes] = result
                if job.kind == "serving":
                    con.register(job.writes, _naive(result))
        finally:
            con.close()
        return out


def deployment(plan: Plan) -> Deployment:
    """The jobs of a placed plan (``rp.optimize(plan, knobs=...)``)."""
    from relplan.compiler.compile import compile as compile_features
    from relplan.compiler.optimize import optimize

    placement = plan.placement
    assert placement is not None
    # Features placed alike share jobs; a hybrid feature has its own three.
    by_feature = {f.name: f for f in plan.features}
    by_output = {s.name: s for s in plan.outputs}
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for fp in placement.features:
        a = fp.chosen
        key = (a.name, a.engine, a.settings, fp.feature if a.name == "hybrid" else None)
        groups.setdefault(key, []).append(by_output[fp.feature] if placement.by_output else by_feature[fp.feature])
    jobs: list[Job] = []
    for (alternative, engine, settings, _), units in groups.items():
        if not placement.by_output:
            outputs = optimize(compile_features(units), placement.config).outputs
            names = tuple(f.name for f in units)
        else:
            outputs, names = tuple(units), tuple(s.name for s in units)
        make = {"batch": _batch_jobs, "streaming": _streaming_jobs, "streaming_consistent": _streaming_jobs, "hybrid": _hybrid_jobs}
        jobs += make[alternative](alternative, engine, dict(settings), outputs, names, plan)
    return Deployment(tuple(jobs))


def _computed_by(sink: Sink, names: tuple[str, ...], plan: Plan) -> tuple[str, ...]:
    """The features (of ``names``) whose columns ``sink`` holds."""
    columns = set(sink.schema.names)
    features = {f.name: f for f in plan.features}
    return tuple(n for n in names if n not in features or set(features[n].columns) <= columns)  # an output is its own


def _batch_jobs(_: str, engine: str, settings: dict[str, int], outputs: tuple[Sink, ...], names: tuple[str, ...], plan: Plan) -> list[Job]:
    schedule = format_duration(settings["schedule"])
    jobs = []
    for sink in outputs:
        out = Sink(sink.input, f"{sink.name}__batch_{schedule}")
        jobs.append(Job(out.name, "batch", engine, _batch_sql(out, engine), _reads(out), out.name, _computed_by(sink, names, plan), schedule, out))
    return jobs


def _streaming_jobs(alternative: str, _: str, settings: dict[str, int], outputs: tuple[Sink, ...], names: tuple[str, ...], plan: Plan) -> list[Job]:
    lateness = settings["allowed_lateness"]
    tag = "stream" if alternative == "streaming" else f"stream_{format_duration(lateness) if lateness else '0'}"
    jobs = []
    for sink in outputs:
        out = Sink(_with_lateness(sink.input, lateness), f"{sink.name}__{tag}")
        jobs.append(Job(out.name, "streaming", "flink", _flink_sql(out), _reads(out), out.name, _computed_by(sink, names, plan), None, out))
    return jobs


def _hybrid_jobs(_: str, engine: str, settings: dict[str, int], outputs: tuple[Sink, ...], names: tuple[str, ...], plan: Plan) -> list[Job]:
    """The daily steps job, the Flink job of the current day, the serving query."""
    (sink,) = outputs
    parts = split_hybrid(Sink(sink.input, f"{sink.name}__{names[0]}"), lateness_us=settings["allowed_lateness"])
    batch_engine = engine.split("+")[0]  # "duckdb+flink": the steps' engine, then the stream's
    steps_sql = parts.steps_sql if batch_engine == "duckdb" else _create_table(parts.steps_table, steps_select_sql(sink, batch_engine), batch_engine)
    return [
        Job(parts.steps_table, "batch", batch_engine, steps_sql, _reads(sink), parts.steps_table, names, "1d", None),
        Job(parts.head_table, "streaming", "flink", _flink_sql(parts.stream), _reads(parts.stream), parts.head_table, names, None, parts.stream),
        Job(parts.output, "serving", "duckdb", parts.serve_sql, (parts.head_table, parts.steps_table), parts.output, names, None, Sink(sink.input, parts.output)),
    ]


def _reads(sink: Node) -> tuple[str, ...]:
    return tuple(s.name for s in sources(sink))


def _with_lateness(node: Node, lateness: int) -> Node:
    (out,) = transform((node,), lambda n: n.replace_fields(lateness=lateness) if isinstance(n, Source) else None)
    return out


def _flink_sql(sink: Sink) -> str:
    from relplan.backends.flink import FlinkBackend

    return FlinkBackend(mode="streaming").to_sql((sink,))


def _batch_sql(sink: Sink, engine: str) -> str:
    from relplan.backends import get_backend

    return _create_table(sink.name, get_backend(engine).to_sql((sink,), pretty=True), engine)


def _create_table(name: str, select: str, engine: str) -> str:
    """The statements that (re)create table ``name`` from a SELECT, as the engine takes them."""
    select = select.rstrip().rstrip(";")
    if engine == "duckdb":
        return f'CREATE OR REPLACE TABLE "{_escaped(name, chr(34))}" AS\n{select}'
    table = f"`{_escaped(name, '`')}`"
    return f"DROP TABLE IF EXISTS {table};\nCREATE TABLE {table} USING parquet AS\n{select}"


def _escaped(name: str, quote: str) -> str:
    return name.replace(quote, quote * 2)
