"""The streaming path into the online store: a Flink job of the groups' event plans.

``materialize`` backfills a store from the tables on a batch engine; this module
keeps it fresh from the stream. Per source, the job is the events plan of each of
its groups (``layout.group_features``: one row per event with a non-NULL key; the
keys, the event time and each slot's masked argument) emitted as one Flink SQL
script in streaming mode (a STATEMENT SET of one INSERT per group: one Flink job).
Its output rows are what ``store.push`` computes on DuckDB, so they are merged with
``store.apply`` in micro-batches, each atomically and under a batch id that is a
function of its contents, so that applying the same micro-batch again (a re-run of
the job over the same events) changes nothing::

    store.materialize(features, tables={"Tx": history}, until=cutoff)
    deployment = with_online_store(plan, store)            # the plan's jobs + the feed
    print(deployment.explain())
    # ...
    # streaming job Tx__online_1f2e3d4c on flink: Tx -> online_store:sqlite://  [tx_count_1d, ...]
    feed_from_flink(store, features, {"Tx": new_events})   # run it here on PyFlink's mini-cluster

Running here, the job reads bounded events, fed in event-time order as a stream
delivers them (as ``Deployment.run_locally`` does), through the Flink backend's
runner in streaming mode, and its rows are cut into micro-batches afterwards: batch
i holds the output rows of the events between two event times (every
``batch_size``-th event's, so that the groups of one source move together), as a
sink committing at checkpoints would hand them over. As with ``push``, feed each
event once: the events after the materialized point, or arriving since the last run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from relplan.backends.arrow_io import conform_table
from relplan.compiler.deployment import Deployment, Job
from relplan.compiler.transformation import Feature
from relplan.ir import nodes
from relplan.ir.errors import DataError, FeatureError
from relplan.ir.graph import walk
from relplan.serving.layout import Group, GroupState, group_features, group_from_json, is_merged, merged_sources
from relplan.serving.storage import StoreError

if TYPE_CHECKING:
    from relplan.compiler.plan import Plan
    from relplan.serving.store import OnlineStore

DEFAULT_BATCH_SIZE = 100  # source events per micro-batch


@dataclass(frozen=True)
class MicroBatch:
    """Output rows of the job for the events with event time in ``[start_us, end_us)``.

    ``rows``: per group id, its rows (keys, time, masked arguments) in a canonical
    order; ``events``: how many source events fell in the interval (NULL keys too)."""

    index: int
    batch_id: str
    start_us: int | None  # None: from the first event
    end_us: int | None  # None: through the last
    events: int
    rows: Mapping[str, pa.Table] = field(compare=False, repr=False)

    @property
    def num_rows(self) -> int:
        return sum(t.num_rows for t in self.rows.values())


@dataclass(frozen=True)
class FeedResult:
    """What a feed did: its micro-batches and which of them the store applied."""

    job: str
    batches: tuple[MicroBatch, ...]
    applied: tuple[str, ...]  # batch ids applied now (the others were applied before, or empty)
    events_applied: int
    flink_seconds: float = 0.0
    apply_seconds: float = 0.0

    @property
    def skipped(self) -> tuple[str, ...]:
        done = set(self.applied)
        return tuple(b.batch_id for b in self.batches if b.batch_id not in done)


@dataclass(frozen=True)
class OnlineStoreFeed(Job):
    """The streaming job that feeds an online store: a ``Job`` (kind "streaming",
    engine "flink", ``writes="online_store:<url>"``) that a ``Deployment`` lists,
    draws and serializes like the others, plus what running it needs.

    ``sql`` is the whole Flink SQL script (its output tables are JSON lines on the
    filesystem unless ``connectors=`` says otherwise: a Kafka topic that a pusher
    reads, for instance); ``plan`` is None, the job having one output per group
    (``sinks``)."""

    source: str = ""
    groups: tuple[Group, ...] = field(default=(), compare=False, repr=False)
    sinks: tuple[nodes.Sink, ...] = field(default=(), compare=False, repr=False)
    store: OnlineStore | None = field(default=None, compare=False, repr=False)

    # -- running here ------------------------------------------------------------------------

    def run_on_flink(
        self, events: Any, *, batch_size: int = DEFAULT_BATCH_SIZE, batch_id_prefix: str | None = None,
        **flink_options: Any,
    ) -> tuple[MicroBatch, ...]:
        """Run the job on Flink (streaming mode; a local mini-cluster unless
        ``table_env=`` is given) over bounded ``events`` of its source (a table, or a
        dict of source name to table), fed in event-time order; its output rows as
        micro-batches of about ``batch_size`` source events each."""
        return self._run(events, "flink", {**flink_options, "mode": "streaming"}, batch_size, batch_id_prefix)

    def _run(
        self, events: Any, engine: str, options: dict[str, Any], batch_size: int, batch_id_prefix: str | None,
    ) -> tuple[MicroBatch, ...]:
        from relplan.backends import get_backend

        table = self._events(events)
        if table.num_rows == 0:
            return ()
        out = get_backend(engine, **options).run(self.sinks, {self.source: table})
        results = {g.id: out[s.name] for g, s in zip(self.groups, self.sinks)}
        return micro_batches(self, table, results, batch_size=batch_size, batch_id_prefix=batch_id_prefix)

    def apply(self, batches: Iterable[MicroBatch], store: OnlineStore | None = None) -> FeedResult:
        """Merge ``batches`` into the store (``store``, else the job's), each atomically,
        in order; a batch whose id the store has applied before is skipped."""
        store = self._store(store)
        states = self.states(store)
        started = time.perf_counter()
        batches = tuple(batches)
        applied: list[str] = []
        n = 0
        for b in batches:
            prepared = [(states[gid], rows) for gid, rows in b.rows.items() if rows.num_rows]
            if not prepared:
                continue  # no event with a key: nothing to write
            got = store.apply(prepared, b.batch_id, source=self.source, n_events=b.events)
            if got:
                applied.append(b.batch_id)
                n += got
        return FeedResult(self.name, batches, tuple(applied), n, apply_seconds=time.perf_counter() - started)

    def feed(
        self, events: Any, store: OnlineStore | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE,
        batch_id_prefix: str | None = None, **flink_options: Any,
    ) -> FeedResult:
        """``run_on_flink`` then ``apply``: the store fed from a local Flink streaming job."""
        store = self._store(store)
        self.states(store)  # refuse before Flink starts, not after
        t0 = time.perf_counter()
        batches = self.run_on_flink(
            events, batch_size=batch_size, batch_id_prefix=batch_id_prefix, **flink_options
        )
        seconds = time.perf_counter() - t0
        r = self.apply(batches, store)
        return FeedResult(r.job, r.batches, r.applied, r.events_applied, seconds, r.apply_seconds)

    def run_locally(
        self, tables: Mapping[str, Any], *, stream_engine: str = "flink", batch_size: int = DEFAULT_BATCH_SIZE,
        **stream_options: Any,
    ) -> pa.Table:
        """Feed the job's store from bounded ``tables`` (source name -> events), as
        ``Deployment.run_locally`` runs a streaming job: on ``stream_engine`` (Flink in
        streaming mode; "duckdb" computes the same rows, as ``push`` does). Returns one
        row per micro-batch: its id, events, output rows and whether it was applied now."""
        store = self._store(None)
        self.states(store)
        options = {**stream_options, "mode": "streaming"} if stream_engine == "flink" else stream_options
        batches = self._run(tables, stream_engine, options, batch_size, None)
        applied = set(self.apply(batches, store).applied)
        return pa.table({
            "batch_id": pa.array([b.batch_id for b in batches], pa.string()),
            "events": pa.array([b.events for b in batches], pa.int64()),
            "rows": pa.array([b.num_rows for b in batches], pa.int64()),
            "applied": pa.array([b.batch_id in applied for b in batches], pa.bool_()),
        })

    def states(self, store: OnlineStore | None = None) -> dict[str, GroupState]:
        """Per group id, its state in the store; refused where the store does not serve it."""
        store = self._store(store)
        store._check_open()
        meta = store._meta()
        out = {}
        for g in self.groups:
            text = meta.get(f"g:{g.id}")
            owned = text is not None and all(
                json.loads(meta.get(f"c:{s.column}", '["", ""]'))[0] == g.id for s in g.slots
            )
            if not owned:
                cols = [s.column for s in g.slots]
                raise FeatureError(
                    f"the online store {store.url} does not hold {cols} as this job computes them: "
                    "materialize these features (together, as the job was built from them) before feeding it"
                )
            out[g.id] = group_from_json(text)  # type: ignore[arg-type]
        return out

    def _store(self, store: OnlineStore | None) -> OnlineStore:
        store = store if store is not None else self.store
        if store is None:
            raise DataError(f"job {self.name!r} has no online store: pass store=")
        return store

    def _events(self, events: Any) -> pa.Table:
        src = self.sinks[0].input
        source = next(n for n in walk(src) if isinstance(n, nodes.Source))
        if isinstance(events, Mapping):
            if self.source not in events:
                raise DataError(
                    f"no table given for source {self.source!r}: pass {{{self.source!r}: <pyarrow table>}}"
                )
            events = events[self.source]
        table = conform_table(source, events)  # NULL event times and wrong columns refused here
        assert source.event_time is not None
        # In event-time order, as a stream delivers them (and as Deployment.run_locally feeds them).
        return table.take(pc.sort_indices(table, [(source.event_time, "ascending")]))


# ---- building the jobs -----------------------------------------------------------------------


def streaming_jobs(
    store: OnlineStore,
    features: Feature | Iterable[Feature],
    *,
    connectors: dict[str, dict[str, str]] | None = None,
) -> tuple[OnlineStoreFeed, ...]:
    """The Flink streaming jobs that keep ``store`` fresh for ``features``: one per
    source (all groups over it in one script, so one Flink job). ``features``: as
    materialized, together (a group's identity is the set of its columns).
    ``connectors``: WITH options per table of the scripts (see ``FlinkBackend``)."""
    from relplan.backends.flink import FlinkBackend, output_tables

    feats = _feature_list(features)
    by_source: dict[str, list[tuple[Group, nodes.Node]]] = {}
    for g, prep in group_features(feats):
        if is_merged(prep):
            raise StoreError(
                f"{[sl.column for sl in g.slots]} aggregate rows merged from {sorted(merged_sources(prep))}: a streaming job "
                "of one source's events cannot enrich them as of their time; materialize them "
                "(store.materialize(...)) on a schedule instead"
            )
        by_source.setdefault(g.source, []).append((g, prep))
    jobs = []
    for source, groups in by_source.items():
        ids = [g.id for g, _ in groups]
        tag = hashlib.sha256(json.dumps([store_label(store.url), ids]).encode()).hexdigest()[:8]
        name = f"{source}__online_{tag}"
        sinks = tuple(nodes.Sink(prep, f"{name}__{g.id}") for g, prep in groups)
        tables = set(output_tables(sinks).values()) | {source}
        mine = {k: v for k, v in (connectors or {}).items() if k in tables}
        sql = FlinkBackend(mode="streaming", connectors=mine).to_sql(sinks)
        columns = {s.column for g, _ in groups for s in g.slots}
        names = tuple(f.name for f in feats if f.source.source_name == source and set(f.columns) <= columns)
        jobs.append(OnlineStoreFeed(
            name, "streaming", "flink", sql, (source,), f"online_store:{store_label(store.url)}", names,
            None, None, source, tuple(g for g, _ in groups), sinks, store,
        ))
    unused = sorted(set(connectors or {}) - {t for j in jobs for t in (j.source, *_output_names(j))})
    if unused:
        raise DataError(f"connectors given for {unused}, which are no tables of the jobs' scripts")
    return tuple(jobs)


def streaming_job(
    store: OnlineStore,
    features: Feature | Iterable[Feature],
    *,
    connectors: dict[str, dict[str, str]] | None = None,
) -> OnlineStoreFeed:
    """The one streaming job of ``streaming_jobs`` (``features`` over one source)."""
    jobs = streaming_jobs(store, features, connectors=connectors)
    if len(jobs) != 1:
        raise FeatureError(
            f"the features read {len(jobs)} sources ({[j.source for j in jobs]}): "
            "one job each, use streaming_jobs()"
        )
    return jobs[0]


def with_online_store(
    plan_or_deployment: Plan | Deployment,
    store: OnlineStore,
    features: Feature | Iterable[Feature] | None = None,
    *,
    connectors: dict[str, dict[str, str]] | None = None,
) -> Deployment:
    """A deployment with the jobs that feed ``store`` added to its DAG: a placed plan's
    ``deployment()`` (or a Deployment) and ``streaming_jobs(store, features)``;
    ``features`` default to the plan's per-event ones."""
    if isinstance(plan_or_deployment, Deployment):
        base = plan_or_deployment
        if features is None:
            raise FeatureError(
                "with_online_store(deployment, store, features): a Deployment does not know its features"
            )
    else:
        base = plan_or_deployment.deployment()
        if features is None:
            features = [f for f in plan_or_deployment.features if isinstance(f, Feature) and f.per_event]
    jobs = streaming_jobs(store, features, connectors=connectors)
    taken = {j.name for j in base.jobs} & {j.name for j in jobs}
    if taken:
        raise DataError(f"the deployment already has jobs {sorted(taken)}")
    return Deployment((*base.jobs, *jobs))


def feed_from_flink(
    store: OnlineStore,
    features: Feature | Iterable[Feature],
    events: Any,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_id_prefix: str | None = None,
    **flink_options: Any,
) -> list[FeedResult]:
    """Feed ``store`` the ``events`` (a dict of source name to table; a table where the
    features read one source) through its streaming jobs run on a local Flink in
    streaming mode, micro-batch by micro-batch (see ``OnlineStoreFeed.feed``).
    Feeding the same events again applies nothing."""
    jobs = streaming_jobs(store, features)
    if not isinstance(events, Mapping):
        if len(jobs) != 1:
            raise DataError(
                f"the features read sources {[j.source for j in jobs]}: pass events as a dict by source name"
            )
        events = {jobs[0].source: events}
    missing = [j.source for j in jobs if j.source not in events]
    if missing:
        raise DataError(f"no events given for sources {missing}: pass {{name: <pyarrow table>}}")
    for j in jobs:
        j.states(store)  # every job's refusal before the first runs
    return [
        j.feed(events, store, batch_size=batch_size, batch_id_prefix=batch_id_prefix, **flink_options)
        for j in jobs
    ]


# ---- micro-batches ---------------------------------------------------------------------------


def micro_batches(
    job: OnlineStoreFeed,
    events: pa.Table,
    results: Mapping[str, pa.Table],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_id_prefix: str | None = None,
) -> tuple[MicroBatch, ...]:
    """The job's output ``results`` (per group id) cut at event times: batch i holds
    the rows of the events between the (i·batch_size)-th event's time and the next
    cut's, so the groups' rows of one event always travel together. Rows are in a
    canonical order and the batch id is ``<prefix><index>:<digest of the rows>``:
    the same events give the same ids, whatever order the engine wrote them in."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise DataError(f"batch_size must be a positive number of events, got {batch_size!r}")
    prefix = f"flink:{job.name}:" if batch_id_prefix is None else batch_id_prefix
    if not isinstance(prefix, str):
        raise DataError(f"batch_id_prefix must be a string, got {type(prefix).__name__}: {prefix!r}")
    times = np.sort(_us(events.column(job.groups[0].time)))
    cuts = np.unique(times[batch_size::batch_size]) if len(times) > batch_size else np.array([], np.int64)
    n_events = np.diff(np.searchsorted(times, cuts, side="left"), prepend=0, append=len(times))
    per_group: dict[str, list[pa.Table]] = {}
    for g in job.groups:
        rows = results[g.id]
        which = np.searchsorted(cuts, _us(rows.column(g.time)), side="right")
        per_group[g.id] = [_canonical(rows.filter(pa.array(which == i))) for i in range(len(cuts) + 1)]
    width = len(str(len(cuts)))
    out = []
    for i in range(len(cuts) + 1):
        rows_i = {gid: per_group[gid][i] for gid in per_group}
        digest = hashlib.sha256()
        for gid in sorted(rows_i):
            digest.update(gid.encode())
            digest.update(_rows_text(rows_i[gid]).encode())
        start = None if i == 0 else int(cuts[i - 1])
        end = None if i == len(cuts) else int(cuts[i])
        batch_id = f"{prefix}{i:0{width}d}:{digest.hexdigest()[:16]}"
        out.append(MicroBatch(i, batch_id, start, end, int(n_events[i]), rows_i))
    return tuple(out)


def _us(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    us = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(us.to_numpy(zero_copy_only=False), np.int64)


def _canonical(rows: pa.Table) -> pa.Table:
    """Rows sorted by every column (time first): equal multisets of rows, equal tables."""
    if rows.num_rows < 2:
        return rows
    return rows.take(pc.sort_indices(rows, [(c, "ascending") for c in rows.column_names]))


def _rows_text(rows: pa.Table) -> str:
    cols = []
    for c in rows.columns:
        if pa.types.is_timestamp(c.type) or pa.types.is_date(c.type):
            c = c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c.cast(pa.int32())
        cols.append([_json_value(v) for v in c.to_pylist()])
    return json.dumps([rows.column_names, cols], separators=(",", ":"))


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v


# ---- small parts -----------------------------------------------------------------------------


def store_label(url: str) -> str:
    """The store's URL as a deployment shows it: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _output_names(job: OnlineStoreFeed) -> list[str]:
    from relplan.backends.flink import output_tables

    return list(output_tables(job.sinks).values())


def _feature_list(features: Any) -> list[Feature]:
    if isinstance(features, Feature):
        items = [features]
    elif isinstance(features, Iterable) and not isinstance(features, str):
        items = list(features)
    else:
        items = []
    if not items:
        raise FeatureError(
            f"the online store's streaming job takes a feature or a list of features, got {features!r}"
        )
    for f in items:
        if not isinstance(f, Feature):
            raise FeatureError(
                f"the online store's streaming job takes features, got {type(f).__name__}: {f!r}"
            )
    return items


__all__ = [
    "DEFAULT_BATCH_SIZE", "FeedResult", "MicroBatch", "OnlineStoreFeed", "feed_from_flink", "micro_batches",
    "streaming_job", "streaming_jobs", "with_online_store",
]
