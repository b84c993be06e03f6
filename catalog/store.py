"""The catalog file: sources and features, their versions, deployments and history, in SQLite.

    cat = rp.Catalog("features.db")          # one local file; nothing else to run
    print(cat.plan(my_module))                # what apply would change, object by object
    cat.apply(my_module)                      # refuses breaking changes to deployed features
    cat.deploy("fraud_scoring", ["tx_count_1h"])
    f = cat.get("tx_count_1h@v2")

Versions are immutable: a change of what a feature computes (its fingerprint) is
a new version; ``get("name")`` is the current one and ``get("name@v1")`` any
other. Metadata edits change no version. A deployed (or protected) feature
cannot take a breaking change unless it is published as a new version (its jobs
keep the version they run) or forced (its jobs move to the new version).

Several processes may share the file: every write is one ``BEGIN IMMEDIATE``
transaction that plans against the state it locked, so two concurrent applies
are serialized (the second plans against the first's result); ``apply(plan=p)``
refuses when the catalog moved since ``p`` was made.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from relplan.catalog.fingerprint import digest, semantics
from relplan.catalog.changes import Change, FeatureState, SourceState, classify_feature, classify_source, downstream
from relplan.catalog.definitions import Definitions, collect
from relplan.catalog.serialize import (
    canonical_json,
    derived_from_dict,
    derived_to_dict,
    feature_from_dict,
    feature_to_dict,
    source_from_dict,
    source_to_dict,
)
from relplan.compiler.derived import DerivedFeature
from relplan.compiler.source import Source
from relplan.compiler.transformation import Feature
from relplan.ir.errors import RelplanError

CATALOG_FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL, definition TEXT NOT NULL, semantics TEXT NOT NULL,
    source TEXT, keys TEXT, description TEXT, owner TEXT, tags TEXT,
    created_at TEXT NOT NULL, generation INTEGER NOT NULL,
    PRIMARY KEY (kind, name, version));
CREATE TABLE IF NOT EXISTS heads (
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    status TEXT NOT NULL, note TEXT, protected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS deployments (
    job TEXT NOT NULL, feature TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (job, feature));
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, generation INTEGER NOT NULL, at TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER, action TEXT NOT NULL, detail TEXT);
"""

_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:@v?(\d+))?$")


class CatalogError(RelplanError):
    """A catalog that cannot be read or written, or a name it does not have."""


class GuardrailError(CatalogError):
    """apply() refused breaking changes to deployed or protected features."""

    def __init__(self, message: str, plan: CatalogPlan) -> None:
        super().__init__(message)
        self.plan = plan


class ConflictError(CatalogError):
    """The catalog changed between plan() and apply(plan=...): plan again."""


@dataclass(frozen=True)
class Entry:
    """A catalog object as list() and search() give it."""

    kind: str
    name: str
    version: int
    status: str
    fingerprint: str
    source: str | None = None
    keys: tuple[str, ...] = ()
    description: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    protected: bool = False
    jobs: tuple[str, ...] = ()
    created_at: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class HistoryEntry:
    generation: int
    at: str
    kind: str
    name: str
    version: int | None
    action: str
    detail: str | None


@dataclass(frozen=True)
class CatalogPlan:
    """What applying the definitions would do; ``str()`` is the diff as printed."""

    path: str
    generation: int
    changes: tuple[Change, ...]
    applied: bool = False
    published: tuple[str, ...] = ()  # features published as new versions (their jobs keep the old one)
    forced: bool = False

    def by_category(self, category: str) -> list[Change]:
        return [c for c in self.changes if c.category == category]

    @property
    def breaking(self) -> list[Change]:
        return self.by_category("breaking")

    @property
    def blocked(self) -> list[Change]:
        return [c for c in self.changes if c.blocked]

    @property
    def has_changes(self) -> bool:
        return any(c.category != "unchanged" for c in self.changes)

    def change(self, name: str, kind: str = "feature") -> Change:
        for c in self.changes:
            if c.name == name and c.kind == kind:
                return c
        raise CatalogError(f"the plan has no {kind} {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"catalog": self.path, "generation": self.generation, "applied": self.applied,
                "changes": [c.to_dict() for c in self.changes]}

    def text(self, *, unchanged: bool = False) -> str:
        head = "applied to" if self.applied else "plan for"
        lines = [f"relplan catalog {head} {self.path} (generation {self.generation})"]
        marks = {"added": "+", "removed": "-", "unchanged": "=", "metadata-only": "~",
                 "non-breaking": "~", "breaking": "!"}
        shown = [c for c in self.changes if unchanged or c.category != "unchanged"]
        width = max([len(f"{c.kind} {c.name}") for c in shown] + [10])
        for c in shown:
            version = f" (v{c.old_version})" if c.old_version is not None and c.category != "added" else ""
            label = c.category.upper() if c.breaking else c.category
            lines.append(f"  {marks[c.category]} {f'{c.kind} {c.name}':<{width}}  {label}{version}")
            for r in c.reasons:
                lines.append(f"      {r}")
            if c.affected_features and c.kind == "source":
                lines.append(f"      breaks features: {', '.join(c.affected_features)}")
            elif c.affected_features:
                lines.append(f"      reaches derived features downstream: {', '.join(c.affected_features)}")
            if c.affected_jobs:
                lines.append(f"      deployed jobs affected: {', '.join(c.affected_jobs)}")
            if c.blocked and c.category == "removed":
                names = list(c.protected)
                lines.append(
                    f"      BLOCKED: {', '.join(names)} {'is' if len(names) == 1 else 'are'} deployed or protected; keep it "
                    "in the definitions (or plan partial definitions: complete=False, relplan --partial), undeploy "
                    "its jobs, or force it (force=True)"
                )
            elif c.blocked:
                names = list(c.protected)
                lines.append(f"      BLOCKED: {', '.join(names)} {'is' if len(names) == 1 else 'are'} deployed or protected")
                lines.append(f"      way out: publish a new version (new_version={names!r}; relplan apply --new-version "
                             f"{' '.join(names)}) or force=True")
            elif c.breaking and c.protected and self.forced:
                lines.append(f"      forced: jobs move to the new version of {', '.join(c.protected)}")
            elif c.breaking and set(c.protected) & set(self.published):
                lines.append("      published as a new version: jobs keep the version they run")
        order = ("breaking", "non-breaking", "added", "removed", "metadata-only", "unchanged")
        counts = [(cat, len(self.by_category(cat))) for cat in order]
        blocked = {cat: sum(c.category == cat for c in self.blocked) for cat in order}
        summary = ", ".join(f"{n} {cat}" + (f" ({blocked[cat]} blocked)" if blocked[cat] else "") for cat, n in counts if n)
        lines.append(f"summary: {summary or 'nothing'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


class Catalog:
    """A catalog of sources and features in one SQLite file (created if absent)."""

    def __init__(self, path: str | os.PathLike[str] = "relplan-catalog.db", *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._features: dict[str, Feature | DerivedFeature] = {}  # definition text -> the feature it reads as
        self._sources: dict[str, type[Source]] = {}
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self._open()
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"{self.path} is not a readable relplan catalog ({e}); the file was left as it is") from None

    def _open(self) -> None:
        db = self._db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise CatalogError(f"{self.path} is an SQLite file but not a relplan catalog (it has tables {sorted(tables)}); "
                               "the file was left as it is")
        db.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        db.execute("PRAGMA journal_mode=WAL")  # readers go on while one process writes
        if not tables:
            with self._write() as cur:  # (not executescript: it would commit the transaction it runs in)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        cur.execute(statement)
                cur.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('generation', '0')", (str(CATALOG_FORMAT),))
        found = self._meta("format")
        if found is None or not found.isdigit():
            raise CatalogError(f"{self.path}: the catalog has no readable format version ({found!r})")
        if int(found) > CATALOG_FORMAT:
            raise CatalogError(f"{self.path} was written by a newer relplan (catalog format {found}; "
                               f"this relplan reads up to {CATALOG_FORMAT}): upgrade relplan")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"rp.Catalog({self.path!r})"

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction, holding the file's write lock from its first statement."""
        with self._lock:
            cur = self._db.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise CatalogError(f"{self.path}: could not lock the catalog for writing ({e})") from None
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.DatabaseError as e:
                raise CatalogError(f"{self.path}: reading the catalog failed ({e})") from None

    def _meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    @property
    def generation(self) -> int:
        """Counts the catalog's writes: plan() records it and apply(plan=...) checks it."""
        return int(self._meta("generation") or 0)

    # -- reading --------------------------------------------------------------------------------

    def _feature_states(self, names: Iterable[str] | None = None) -> dict[str, FeatureState]:
        sql = ("SELECT h.name, h.version, h.status, h.protected, v.fingerprint, v.semantics, v.description, v.owner, v.tags "
               "FROM heads h JOIN versions v ON v.kind = h.kind AND v.name = h.name AND v.version = h.version "
               "WHERE h.kind = 'feature'")
        rows = self._query(sql)
        jobs: dict[str, list[str]] = {}
        for job, feature in self._query("SELECT job, feature FROM deployments ORDER BY job"):
            jobs.setdefault(feature, []).append(job)
        wanted = None if names is None else set(names)
        out = {}
        for name, version, status, protected, fingerprint, parts, desc, owner, tags in rows:
            if wanted is not None and name not in wanted:
                continue
            out[name] = FeatureState(
                name, fingerprint, json.loads(parts), _meta_dict(desc, owner, tags), version, status,
                bool(protected) or name in jobs, tuple(jobs.get(name, ())),
            )
        return out

    def _source_states(self) -> dict[str, SourceState]:
        rows = self._query(
            "SELECT h.name, h.version, h.status, v.semantics FROM heads h JOIN versions v "
            "ON v.kind = h.kind AND v.name = h.name AND v.version = h.version WHERE h.kind = 'source'"
        )
        return {name: SourceState(name, json.loads(shape), version, status) for name, version, status, shape in rows}

    def get(self, ref: str) -> Feature | DerivedFeature:
        """The feature ``name`` (its current version) or ``name@v2``."""
        return self.resolve([ref])[0]

    def resolve(self, refs: Iterable[str | Feature | DerivedFeature]) -> list[Feature | DerivedFeature]:
        """Features by name (``"tx_count_1h"``, ``"tx_count_1h@v2"``); feature objects pass through.
        A derived feature's version reads back with the input versions it was applied with."""
        items = list(refs)
        parsed: list[tuple[str, int | None] | None] = []
        for r in items:
            if isinstance(r, (Feature, DerivedFeature)):
                parsed.append(None)
                continue
            if not isinstance(r, str):
                raise CatalogError(f"features are named by strings like 'tx_count_1h' or 'tx_count_1h@v2', got {r!r}")
            m = _REF.match(r.strip())
            if m is None:
                raise CatalogError(f"{r!r} is not a feature reference: write 'name' or 'name@v2'")
            parsed.append((m.group(1), int(m.group(2)) if m.group(2) else None))
        names = sorted({p[0] for p in parsed if p is not None})
        if not names:
            return items  # type: ignore[return-value]
        marks = ",".join("?" * len(names))
        heads = {n: (v, s, note) for n, v, s, note in self._query(
            f"SELECT name, version, status, note FROM heads WHERE kind = 'feature' AND name IN ({marks})", names)}
        want: dict[tuple[str, int], None] = {}
        for p in parsed:
            if p is None:
                continue
            name, version = p
            head = heads.get(name)
            if head is None:
                raise CatalogError(f"no feature {name!r} in the catalog {self.path}" + self._did_you_mean(name))
            if version is None:
                if head[1] == "removed":
                    raise CatalogError(f"feature {name!r} was removed from the catalog; its versions stay resolvable "
                                       f"as {name}@v1 .. {name}@v{head[0]}")
                if head[1] == "deprecated":
                    warnings.warn(f"feature {name!r} is deprecated: {head[2] or 'no reason given'}", DeprecationWarning,
                                  stacklevel=3)
            want[(name, head[0] if version is None else version)] = None
        clauses = " OR ".join("(name = ? AND version = ?)" for _ in want)
        rows = self._query(f"SELECT name, version, definition FROM versions WHERE kind = 'feature' AND ({clauses})",
                           [x for k in want for x in k])
        found = {(n, v): d for n, v, d in rows}
        out: list[Feature | DerivedFeature] = []
        for item, p in zip(items, parsed):
            if p is None:
                out.append(item)  # type: ignore[arg-type]
                continue
            name, version = p
            key = (name, heads[name][0] if version is None else version)
            text = found.get(key)
            if text is None:
                raise CatalogError(f"feature {name!r} has no version {key[1]} (it has v1 .. v{heads[name][0]})")
            out.append(self._feature(text, f"{name}@v{key[1]}"))
        return out

    def _feature(self, text: str, ref: str) -> Feature | DerivedFeature:
        got = self._features.get(text)
        if got is None:
            try:
                doc = json.loads(text)
                got = derived_from_dict(doc) if isinstance(doc, dict) and doc.get("kind") == "derived" else feature_from_dict(doc)
            except (ValueError, RelplanError) as e:
                raise CatalogError(f"{self.path}: the stored definition of {ref} is damaged ({e})") from None
            self._features[text] = got
        return got

    def get_source(self, ref: str) -> type[Source]:
        """The source class ``name`` (current version) or ``name@v2``."""
        m = _REF.match(ref.strip()) if isinstance(ref, str) else None
        if m is None:
            raise CatalogError(f"{ref!r} is not a source reference: write 'Name' or 'Name@v2'")
        name, version = m.group(1), m.group(2)
        if version is None:
            rows = self._query("SELECT v.definition, v.version FROM heads h JOIN versions v ON v.kind = h.kind "
                               "AND v.name = h.name AND v.version = h.version WHERE h.kind = 'source' AND h.name = ?", (name,))
        else:
            rows = self._query("SELECT definition, version FROM versions WHERE kind = 'source' AND name = ? AND version = ?",
                               (name, int(version)))
        if not rows:
            raise CatalogError(f"no source {ref!r} in the catalog {self.path}" + self._did_you_mean(name, "source"))
        text = rows[0][0]
        got = self._sources.get(text)
        if got is None:
            try:
                got = source_from_dict(json.loads(text))
            except (ValueError, RelplanError) as e:
                raise CatalogError(f"{self.path}: the stored definition of source {name}@v{rows[0][1]} is damaged ({e})") from None
            self._sources[text] = got
        return got

    def _did_you_mean(self, name: str, kind: str = "feature") -> str:
        from difflib import get_close_matches

        names = [r[0] for r in self._query("SELECT name FROM heads WHERE kind = ?", (kind,))]
        close = get_close_matches(name, names, n=3)
        return f"; did you mean {', '.join(close)}?" if close else ""

    def list(
        self,
        kind: str = "feature",
        *,
        name: str | None = None,
        source: str | None = None,
        key: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
        text: str | None = None,
        include_deprecated: bool = True,
        include_removed: bool = False,
    ) -> list[Entry]:
        """Catalog entries (current versions), filtered: ``name`` is a glob (``tx_*``), ``text``
        searches names, descriptions and tags; the others match exactly."""
        import fnmatch

        if kind not in ("feature", "source"):
            raise CatalogError(f"list() takes kind='feature' or 'source', got {kind!r}")
        jobs: dict[str, list[str]] = {}
        for job, feature in self._query("SELECT job, feature FROM deployments ORDER BY job"):
            jobs.setdefault(feature, []).append(job)
        rows = self._query(
            "SELECT h.name, h.version, h.status, h.protected, v.fingerprint, v.source, v.keys, v.description, v.owner, "
            "v.tags, v.created_at FROM heads h JOIN versions v ON v.kind = h.kind AND v.name = h.name "
            "AND v.version = h.version WHERE h.kind = ? ORDER BY h.name", (kind,))
        out = []
        for n, version, status, protected, fingerprint, src, keys, desc, own, tags, created in rows:
            tag_list = tuple(json.loads(tags or "[]"))
            key_list = tuple(json.loads(keys or "[]"))
            if status == "removed" and not include_removed or status == "deprecated" and not include_deprecated:
                continue
            if name is not None and not fnmatch.fnmatchcase(n, name):
                continue
            if source is not None and src != source or owner is not None and own != owner:
                continue
            if key is not None and key not in key_list or tag is not None and tag not in tag_list:
                continue
            if text is not None:
                hay = " ".join([n, desc or "", " ".join(tag_list)]).lower()
                if text.lower() not in hay:
                    continue
            out.append(Entry(kind, n, version, status, fingerprint, src, key_list, desc, own, tag_list,
                             bool(protected) or n in jobs, tuple(jobs.get(n, ())), created))
        return out

    def search(self, text: str, **filters: Any) -> list[Entry]:
        """Features whose name, description or tags contain ``text`` (case-insensitive)."""
        return self.list(text=text, **filters)

    def versions(self, name: str, kind: str = "feature") -> list[Entry]:
        """Every version of a feature (or source), oldest first."""
        rows = self._query("SELECT version, fingerprint, source, keys, description, owner, tags, created_at FROM versions "
                           "WHERE kind = ? AND name = ? ORDER BY version", (kind, name))
        if not rows:
            raise CatalogError(f"no {kind} {name!r} in the catalog {self.path}" + self._did_you_mean(name, kind))
        head = self._query("SELECT version, status FROM heads WHERE kind = ? AND name = ?", (kind, name))[0]
        return [Entry(kind, name, v, head[1] if v == head[0] else "superseded", fpr, src, tuple(json.loads(k or "[]")),
                      d, o, tuple(json.loads(t or "[]")), False, (), c) for v, fpr, src, k, d, o, t, c in rows]

    def history(self, name: str | None = None, kind: str = "feature") -> list[HistoryEntry]:
        """What happened to ``name`` (or to everything), oldest first."""
        if name is None:
            rows = self._query("SELECT generation, at, kind, name, version, action, detail FROM history ORDER BY seq")
        else:
            rows = self._query("SELECT generation, at, kind, name, version, action, detail FROM history "
                               "WHERE kind = ? AND name = ? ORDER BY seq", (kind, name))
            if not rows:
                raise CatalogError(f"no {kind} {name!r} in the catalog {self.path}" + self._did_you_mean(name, kind))
        return [HistoryEntry(*r) for r in rows]

    def deployments(self) -> dict[str, dict[str, int]]:
        """Job -> {feature: the version it runs}."""
        out: dict[str, dict[str, int]] = {}
        for job, feature, version in self._query("SELECT job, feature, version FROM deployments ORDER BY job, feature"):
            out.setdefault(job, {})[feature] = version
        return out

    def source_readers(self, source: str) -> list[str]:
        """The current features reading columns of ``source``: those of it, and those whose
        merge joins it (``list(source=...)`` has only a feature's own source)."""
        return sorted(s.name for s in self._feature_states().values() if source in s.sources and s.status != "removed")

    def features(self, *, include_deprecated: bool = True) -> list[Feature | DerivedFeature]:
        """Every current feature (not removed): Feature objects, and DerivedFeature objects for derived ones."""
        names = [e.name for e in self.list(include_deprecated=include_deprecated)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return self.resolve(names) if names else []

    def lineage(self) -> Any:
        """Column-level lineage of the current features and the deployed jobs (a LineageGraph)."""
        from relplan.catalog.lineage import lineage_graph

        # A job pinned to an older version (published anew since) runs no current feature.
        heads = {e.name: e.version for e in self.list()}
        jobs = {job: [f for f, v in fs.items() if heads.get(f) == v] for job, fs in self.deployments().items()}
        return lineage_graph(self.features(), {job: fs for job, fs in jobs.items() if fs})

    # -- plan and apply -------------------------------------------------------------------------

    def plan(self, definitions: Any, *, complete: bool = True, new_version: Iterable[str] | bool = (),
             force: bool = False) -> CatalogPlan:
        """What ``apply(definitions)`` would change, classified (see catalog/changes.py).

        ``complete``: the definitions are the whole project, so catalog features
        missing from them are removed (False: they are left alone)."""
        defs = collect(definitions)
        return self._plan(defs, self._feature_states(), self._source_states(), self.generation, complete,
                          new_version, force)

    def _plan(self, defs: Definitions, old_f: dict[str, FeatureState], old_s: dict[str, SourceState], generation: int,
              complete: bool, new_version: Iterable[str] | bool, force: bool) -> CatalogPlan:
        new_f = {name: _state(f) for name, f in defs.features.items()}
        publish = set(new_f) if new_version is True else set() if new_version is False else set(new_version)
        unknown = sorted(publish - set(new_f))
        if unknown:
            raise CatalogError(f"new_version names features not in the definitions: {unknown}")
        changes: list[Change] = []
        for name, cls in sorted(defs.sources.items()):
            readers = [s for s in old_f.values() if name in s.sources and s.status != "removed"]
            category, reasons, broken = classify_source(old_s.get(name), _shape(cls), readers)
            broken = _with_downstream(broken, old_f)
            changes.append(self._guard(Change(
                "source", name, category, reasons, _version(old_s.get(name)), broken,
                _jobs_of(broken, old_f), tuple(sorted(b for b in broken if old_f[b].protected)),
            ), publish, force))
        # A change reaches the derived features reading it, in the catalog and in the definitions.
        readers_of = [*old_f.values(), *new_f.values()]
        for name, new in sorted(new_f.items()):
            old = old_f.get(name)
            category, reasons = classify_feature(old, new)
            protected = (name,) if old is not None and old.protected and old.status != "removed" else ()
            jobs = old.jobs if old and category != "unchanged" else ()
            below: tuple[str, ...] = ()
            if category in ("breaking", "non-breaking"):
                below = downstream([name], readers_of)
                jobs = tuple(sorted({*jobs, *_jobs_of([b for b in below if b in old_f], old_f)}))
                if category == "breaking":
                    protected += tuple(b for b in below if b in old_f and old_f[b].protected and old_f[b].status != "removed")
            changes.append(self._guard(Change(
                "feature", name, category, reasons, _version(old), below, jobs, protected,
            ), publish, force))
        if complete:
            for name, old in sorted(old_f.items()):
                if name not in new_f and old.status != "removed":
                    below = tuple(b for b in downstream([name], old_f.values()) if b not in new_f)
                    changes.append(self._guard(Change(
                        "feature", name, "removed", ("not in the definitions",), old.version, below, old.jobs,
                        (name,) if old.protected else (),
                    ), publish, force))
            for name, old_src in sorted(old_s.items()):
                if name not in defs.sources and old_src.status != "removed":
                    users = tuple(sorted(f.name for f in old_f.values() if name in f.sources and f.status != "removed"
                                         and f.name in new_f))
                    changes.append(Change("source", name, "removed", ("not in the definitions",), old_src.version, users))
        return CatalogPlan(self.path, generation, tuple(changes), published=tuple(sorted(publish)), forced=force)

    @staticmethod
    def _guard(c: Change, publish: set[str], force: bool) -> Change:
        """Block a breaking change (or a removal) that reaches a protected feature not published anew."""
        if c.category not in ("breaking", "removed") or not c.protected or force:
            return c
        if c.category == "breaking" and set(c.protected) <= publish:
            return c
        return Change(c.kind, c.name, c.category, c.reasons, c.old_version, c.affected_features, c.affected_jobs,
                      c.protected, blocked=True)

    def apply(self, definitions: Any, *, complete: bool = True, new_version: Iterable[str] | bool = (),
              force: bool = False, plan: CatalogPlan | None = None) -> CatalogPlan:
        """Write the definitions: new versions for changed features and sources.

        Raises GuardrailError (and writes nothing) if a breaking change reaches a
        deployed or protected feature, unless that feature is in ``new_version``
        (published as a new version; its jobs keep the version they run) or
        ``force`` (its jobs move to the new version). ``plan``: the plan shown to a
        reviewer; apply refuses (ConflictError) if the catalog changed since."""
        defs = collect(definitions)
        with self._write() as cur:
            generation = int(cur.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            if plan is not None and plan.generation != generation:
                raise ConflictError(f"{self.path} changed since this plan was made (generation {plan.generation} -> "
                                    f"{generation}): plan again and review the new plan")
            result = self._plan(defs, self._feature_states(), self._source_states(), generation, complete,
                                new_version, force)
            if result.blocked:
                names = sorted({n for c in result.blocked for n in c.protected})
                raise GuardrailError(
                    f"apply refused: breaking changes reach deployed or protected features {names}:\n{result.text()}",
                    result)
            if not result.has_changes:
                return _applied(result)
            generation += 1
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            publish = set(result.published)
            for c in result.changes:
                self._write_change(cur, c, defs, generation, now, publish, force)
            cur.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        return _applied(CatalogPlan(self.path, generation, result.changes, True, result.published, force))

    def _write_change(self, cur: sqlite3.Cursor, c: Change, defs: Definitions, generation: int, now: str,
                      publish: set[str], force: bool) -> None:
        if c.category == "unchanged":
            return
        log = "INSERT INTO history (generation, at, kind, name, version, action, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
        detail = "; ".join(c.reasons) or None
        if c.category == "removed":
            cur.execute("UPDATE heads SET status = 'removed', protected = 0 WHERE kind = ? AND name = ?", (c.kind, c.name))
            if c.kind == "feature":
                cur.execute("DELETE FROM deployments WHERE feature = ?", (c.name,))
            cur.execute(log, (generation, now, c.kind, c.name, c.old_version, "removed" + (" (forced)" if force else ""), detail))
            return
        if c.kind == "source":
            cls = defs.sources[c.name]
            definition, parts = source_to_dict(cls), _shape(cls)
            row = (None, None, None, None, None)
        else:
            f = defs.features[c.name]
            if isinstance(f, DerivedFeature):
                definition, parts = derived_to_dict(f), semantics(f)
                source_name = None  # it reads features (see its lineage), not one source
            else:
                definition, parts = feature_to_dict(f), semantics(f)
                source_name = f.source.source_name
            row = (source_name, json.dumps(list(f.keys)), f.description, f.owner, json.dumps(list(f.tags)))
        text = canonical_json(definition)
        if c.category == "metadata-only":
            cur.execute("UPDATE versions SET definition = ?, description = ?, owner = ?, tags = ? "
                        "WHERE kind = ? AND name = ? AND version = ?", (text, *row[2:], c.kind, c.name, c.old_version))
            cur.execute(log, (generation, now, c.kind, c.name, c.old_version, "metadata", detail))
            return
        top = cur.execute("SELECT MAX(version) FROM versions WHERE kind = ? AND name = ?", (c.kind, c.name)).fetchone()[0]
        version = (top or 0) + 1
        cur.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.kind, c.name, version, digest(parts), text, canonical_json(parts), *row, now, generation))
        cur.execute("INSERT INTO heads (kind, name, version, status, note, protected) VALUES (?, ?, ?, 'active', NULL, 0) "
                    "ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version, status = 'active', note = NULL",
                    (c.kind, c.name, version))
        action = "added" if c.category == "added" else f"new version ({c.category})"
        if c.kind == "feature" and c.protected:
            if force:
                cur.execute("UPDATE deployments SET version = ? WHERE feature = ?", (version, c.name))
                action += ", forced: jobs moved to the new version"
            elif c.name in publish:
                action += ", published: jobs keep the version they run"
            else:  # non-breaking: the jobs read the same values from the new version
                cur.execute("UPDATE deployments SET version = ? WHERE feature = ?", (version, c.name))
        cur.execute(log, (generation, now, c.kind, c.name, version, action, detail))

    # -- deployment and lifecycle ---------------------------------------------------------------

    def deploy(self, job: str, features: Iterable[str]) -> dict[str, int]:
        """Record that ``job`` runs these features (their current versions); they become protected."""
        names = [features] if isinstance(features, str) else list(features)
        resolved = {}
        with self._write() as cur:
            generation = self._bump(cur)
            now = _now()
            for ref in names:
                name, version = self._ref(cur, ref)
                cur.execute("INSERT INTO deployments VALUES (?, ?, ?) ON CONFLICT (job, feature) DO UPDATE SET version = "
                            "excluded.version", (job, name, version))
                cur.execute("INSERT INTO history (generation, at, kind, name, version, action, detail) VALUES "
                            "(?, ?, 'feature', ?, ?, 'deployed', ?)", (generation, now, name, version, f"job {job}"))
                resolved[name] = version
        return resolved

    def undeploy(self, job: str) -> None:
        """Forget a job (its features stay protected only if another job or protect() holds them)."""
        with self._write() as cur:
            if cur.execute("SELECT COUNT(*) FROM deployments WHERE job = ?", (job,)).fetchone()[0] == 0:
                raise CatalogError(f"no deployed job {job!r} in {self.path}")
            generation = self._bump(cur)
            for (name,) in cur.execute("SELECT feature FROM deployments WHERE job = ?", (job,)).fetchall():
                cur.execute("INSERT INTO history (generation, at, kind, name, version, action, detail) VALUES "
                            "(?, ?, 'feature', ?, NULL, 'undeployed', ?)", (generation, _now(), name, f"job {job}"))
            cur.execute("DELETE FROM deployments WHERE job = ?", (job,))

    def protect(self, names: Iterable[str] | str, protected: bool = True) -> None:
        """Mark features protected (breaking changes need a new version), or not."""
        self._set_heads(names, "protected = ?", (int(protected),), "protected" if protected else "unprotected", None)

    def deprecate(self, names: Iterable[str] | str, reason: str | None = None) -> None:
        """Mark features deprecated: still resolvable (with a warning), listed as deprecated."""
        self._set_heads(names, "status = 'deprecated', note = ?", (reason,), "deprecated", reason)

    def _set_heads(self, names: Iterable[str] | str, assignment: str, args: tuple[Any, ...], action: str,
                   detail: str | None) -> None:
        items = [names] if isinstance(names, str) else list(names)
        with self._write() as cur:
            generation = self._bump(cur)
            for ref in items:
                name, version = self._ref(cur, ref)
                cur.execute(f"UPDATE heads SET {assignment} WHERE kind = 'feature' AND name = ?", (*args, name))
                cur.execute("INSERT INTO history (generation, at, kind, name, version, action, detail) VALUES "
                            "(?, ?, 'feature', ?, ?, ?, ?)", (generation, _now(), name, version, action, detail))

    def _ref(self, cur: sqlite3.Cursor, ref: str) -> tuple[str, int]:
        m = _REF.match(ref.strip()) if isinstance(ref, str) else None
        if m is None:
            raise CatalogError(f"{ref!r} is not a feature reference: write 'name' or 'name@v2'")
        row = cur.execute("SELECT version, status FROM heads WHERE kind = 'feature' AND name = ?", (m.group(1),)).fetchone()
        if row is None or row[1] == "removed":
            raise CatalogError(f"no feature {m.group(1)!r} in the catalog {self.path}" + self._did_you_mean(m.group(1)))
        version = int(m.group(2)) if m.group(2) else row[0]
        if cur.execute("SELECT 1 FROM versions WHERE kind = 'feature' AND name = ? AND version = ?",
                       (m.group(1), version)).fetchone() is None:
            raise CatalogError(f"feature {m.group(1)!r} has no version {version} (it has v1 .. v{row[0]})")
        return m.group(1), version

    @staticmethod
    def _bump(cur: sqlite3.Cursor) -> int:
        generation = int(cur.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]) + 1
        cur.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        return generation

    # -- a source's next schema -----------------------------------------------------------------

    def check_source(self, name: str, schema: Any) -> Change:
        """Classify a source's new schema (a pyarrow schema or table) before its data arrives:
        which features it would break, column by column."""
        import pyarrow as pa

        from relplan.ir.schema import Schema

        if isinstance(schema, pa.Table):
            schema = schema.schema
        if not isinstance(schema, pa.Schema):
            raise CatalogError(f"check_source() takes a pyarrow schema or table, got {type(schema).__name__}")
        old = self._source_states().get(name)
        if old is None:
            raise CatalogError(f"no source {name!r} in the catalog {self.path}" + self._did_you_mean(name, "source"))
        logical = Schema.from_arrow(schema)
        shape = dict(old.shape, columns=[[f.name, f.dtype.name] for f in logical])
        if old.shape["event_time"] is not None and old.shape["event_time"] not in logical:
            shape["event_time"] = None
        states = self._feature_states()
        readers = [s for s in states.values() if name in s.sources and s.status != "removed"]
        category, reasons, broken = classify_source(old, shape, readers)
        broken = _with_downstream(broken, states)
        return Change("source", name, category, reasons, old.version, broken, _jobs_of(broken, states),
                      tuple(b for b in broken if states[b].protected))


def _applied(p: CatalogPlan) -> CatalogPlan:
    return CatalogPlan(p.path, p.generation, p.changes, True, p.published, p.forced)


def _with_downstream(broken: tuple[str, ...], states: dict[str, FeatureState]) -> tuple[str, ...]:
    """The features ``broken`` and the derived features reading them (they break with them)."""
    return tuple(sorted({*broken, *downstream(broken, states.values())})) if broken else broken


def _state(f: Feature | DerivedFeature) -> FeatureState:
    s = semantics(f)
    return FeatureState(f.name, digest(s), s, {"description": f.description, "owner": f.owner, "tags": f.tags})


def _shape(cls: type[Source]) -> dict[str, Any]:
    node = cls.node()
    return {"name": node.name, "columns": [[c.name, c.dtype.name] for c in node.columns], "event_time": node.event_time,
            "lateness": node.lateness, "bounded": node.bounded, "keys": list(node.keys)}


def _meta_dict(desc: str | None, owner: str | None, tags: str | None) -> dict[str, Any]:
    return {"description": desc, "owner": owner, "tags": tuple(json.loads(tags or "[]"))}


def _version(state: FeatureState | SourceState | None) -> int | None:
    return None if state is None else state.version


def _jobs_of(features: Iterable[str], states: dict[str, FeatureState]) -> tuple[str, ...]:
    return tuple(sorted({j for f in features for j in states[f].jobs}))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
