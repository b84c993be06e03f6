"""The guardrail's classifier: what applying new definitions would change, object by object.

Every feature and source of the definitions (and, for a complete set, every one
of the catalog missing from them) falls in one category:

- ``added``: new to the catalog.
- ``removed``: in the catalog, not in the definitions.
- ``unchanged``: the same fingerprint and metadata.
- ``metadata-only``: the same fingerprint; description, owner or tags differ.
- ``non-breaking``: every value a consumer reads stays the same: a feature that
  only adds output columns (its existing aggregates unchanged), a source that
  adds columns, or drops or retypes columns no feature reads.
- ``breaking``: anything else: a changed window, filter, aggregate, key, input
  type, event time or allowed lateness; a source column dropped or retyped that
  a feature reads. The classifier never guesses: what it cannot prove safe is
  breaking.

Source changes are classified at column level: the catalog keeps, per feature
version, the source columns its IR reads (``fingerprint.source_reads``: for a
feature over merged rows, those of every source it joins), so dropping a column
breaks exactly the features whose lineage touches it.

A feature over merged rows is also compared join by join (kind, keys, interval
bounds, as-of frame) and column by column on every source it joins. A derived
feature (``rp.derived``) is compared on its expression, its request fields and each
input: a breaking change of an input is a breaking change of it; an input that
only adds outputs leaves it non-breaking. Changes reach downstream as in SQLMesh:
a feature's change names the derived features that read it (``downstream``), and
their deployed jobs and protection count as its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from relplan.compiler.windowspec import WindowSpec

CATEGORIES = ("added", "removed", "unchanged", "metadata-only", "non-breaking", "breaking")


@dataclass(frozen=True)
class Change:
    """One object's change. ``affected_features``/``affected_jobs``: what it reaches downstream."""

    kind: str  # "feature" | "source"
    name: str
    category: str
    reasons: tuple[str, ...] = ()
    old_version: int | None = None
    affected_features: tuple[str, ...] = ()
    affected_jobs: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()  # the protected features among this object and what it affects
    blocked: bool = False  # refused by apply unless published as a new version or forced

    @property
    def breaking(self) -> bool:
        return self.category == "breaking"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "category": self.category, "reasons": list(self.reasons),
            "old_version": self.old_version, "affected_features": list(self.affected_features),
            "affected_jobs": list(self.affected_jobs), "protected": list(self.protected), "blocked": self.blocked,
        }


@dataclass(frozen=True)
class FeatureState:
    """What the classifier needs of a feature version (the catalog's row, or a definition's)."""

    name: str
    fingerprint: str
    semantics: dict[str, Any]
    metadata: dict[str, Any]
    version: int | None = None
    status: str = "active"
    protected: bool = False
    jobs: tuple[str, ...] = ()

    @property
    def derived(self) -> bool:
        """A derived feature (``rp.derived``): it reads features, not sources."""
        return "derived" in self.semantics

    @property
    def source(self) -> str | None:
        """The feature's own source (None for a derived feature)."""
        return None if self.derived else self.semantics["source"]["name"]  # type: ignore[no-any-return]

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source it reads directly: its own, and any a merge joined to it."""
        return tuple(sorted(read_columns(self.semantics)))

    @property
    def inputs(self) -> tuple[str, ...]:
        """The features a derived feature reads (none for any other)."""
        return tuple(i["name"] for i in self.semantics.get("inputs", ()))

    @property
    def reads(self) -> dict[str, str]:
        """Column -> its type, for every column the feature reads of its own source."""
        return self.reads_of(self.source) if self.source is not None else {}

    def reads_of(self, source: str) -> dict[str, str]:
        """Column -> its type, for every column the feature reads of ``source``."""
        return read_columns(self.semantics).get(source, {})


def read_columns(parts: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Source -> {column: type} a feature's parts say it reads (every source of merged rows)."""
    if "derived" in parts:
        return {}
    rows = parts.get("rows")
    if rows is None:
        return {parts["source"]["name"]: dict(parts["source"]["columns"])}
    out: dict[str, dict[str, str]] = {}
    for e in rows["nodes"]:
        if e["kind"] == "Source":
            out.setdefault(e["name"], {}).update(dict(e["columns"]))
    return out


def downstream(names: Iterable[str], states: Iterable[FeatureState]) -> tuple[str, ...]:
    """The derived features among ``states`` that read any of ``names``, transitively, sorted."""
    reached: set[str] = set()
    frontier = set(names)
    states = [s for s in states if s.derived and s.status != "removed"]
    while frontier:
        hit = {s.name for s in states if set(s.inputs) & frontier} - reached
        reached |= hit
        frontier = hit
    return tuple(sorted(reached))


@dataclass(frozen=True)
class SourceState:
    name: str
    shape: dict[str, Any]  # columns [[name, type]], event_time, lateness, bounded, keys
    version: int | None = None
    status: str = "active"


def classify_feature(old: FeatureState | None, new: FeatureState) -> tuple[str, tuple[str, ...]]:
    """Category and reasons of ``new`` against the catalog's current version ``old``."""
    if old is None or old.status == "removed":
        return "added", ()
    if old.fingerprint == new.fingerprint:
        diffs = _metadata_diffs(old.metadata, new.metadata)
        return ("metadata-only", diffs) if diffs else ("unchanged", ())
    reasons, additive = _semantic_diffs(old.semantics, new.semantics)
    return ("non-breaking" if additive else "breaking"), tuple(reasons)


def classify_source(
    old: SourceState | None, new_shape: dict[str, Any], readers: list[FeatureState]
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Category, reasons and the features it breaks, of a source's new shape.

    ``readers``: the catalog's current features of this source (each knows the
    columns it reads)."""
    if old is None or old.status == "removed":
        return "added", (), ()
    before, after = dict(old.shape["columns"]), dict(new_shape["columns"])
    reasons: list[str] = []
    broken: dict[str, None] = {}
    reads = [(f.name, f.reads_of(old.name)) for f in readers]
    for col, t in before.items():
        if col in after and after[col] == t:
            continue
        hit = [name for name, cols in reads if col in cols]
        if col not in after:
            reasons.append(f"drops column {col} ({t})" + (f", read by {', '.join(hit)}" if hit else ", which no feature reads"))
        else:
            reasons.append(f"retypes column {col} {t} -> {after[col]}" + (f", read by {', '.join(hit)}" if hit else ", which no feature reads"))
        broken.update(dict.fromkeys(hit))
    for col, t in after.items():
        if col not in before:
            reasons.append(f"adds column {col} ({t})")
    for what in ("event_time", "lateness", "bounded"):
        if old.shape[what] != new_shape[what]:
            reasons.append(f"{_label(what)} {_show(what, old.shape[what])} -> {_show(what, new_shape[what])}"
                           + (f", which every feature of it reads: {', '.join(f.name for f in readers)}" if readers else ""))
            broken.update(dict.fromkeys(f.name for f in readers))
    if old.shape["keys"] != new_shape["keys"]:
        reasons.append(f"declared entity keys {old.shape['keys']} -> {new_shape['keys']} (no feature's values depend on the declaration)")
    if not reasons:
        return "unchanged", (), ()
    return ("breaking" if broken else "non-breaking"), tuple(reasons), tuple(sorted(broken))


def _label(what: str) -> str:
    return {"event_time": "event-time column", "lateness": "allowed lateness", "bounded": "boundedness"}[what]


def _show(what: str, value: Any) -> str:
    if what == "lateness":
        from relplan.ir.windows import format_duration

        return format_duration(value) if value else "0"
    if what == "bounded":
        return "bounded" if value else "unbounded"
    return repr(value)


def _metadata_diffs(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for key in ("description", "owner", "tags"):
        a, b = old.get(key), new.get(key)
        if key == "tags":
            a, b = list(a or ()), list(b or ())
        if a != b:
            out.append(f"{key} {_short(a)} -> {_short(b)}")
    return tuple(out)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _semantic_diffs(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], bool]:
    """Readable reasons, and whether the change only adds outputs (non-breaking)."""
    if "derived" in old or "derived" in new:
        return _derived_diffs(old, new)
    reasons: list[str] = []
    so, sn = old["source"], new["source"]
    if so["name"] != sn["name"]:
        reasons.append(f"reads source {sn['name']} instead of {so['name']}")
    else:
        co, cn = dict(so["columns"]), dict(sn["columns"])
        for c in co:
            if c in cn and co[c] != cn[c]:
                reasons.append(f"input column {so['name']}.{c} retyped {co[c]} -> {cn[c]}")
        for what in ("event_time", "lateness", "bounded"):
            if so[what] != sn[what]:
                reasons.append(f"source {_label(what)} {_show(what, so[what])} -> {_show(what, sn[what])}")
    if old["window"] != new["window"]:
        reasons.append(f"window {_window(old['window'])} -> {_window(new['window'])}")
    if old["keys"] != new["keys"]:
        reasons.append(f"keys [{_keys(old['keys'])}] -> [{_keys(new['keys'])}]")
    if old["filter"] != new["filter"]:
        reasons.append(f"filter {_expr(old['filter'])} -> {_expr(new['filter'])}")
    if old.get("rows") != new.get("rows"):
        reasons += _rows_diffs(old, new)
    additive = False
    ao = {a["output"]: a for a in old["aggregates"]}
    an = {a["output"]: a for a in new["aggregates"]}
    for out, a in ao.items():
        if out not in an:
            reasons.append(f"drops output {_output(out)} ({_agg(a)})")
        elif an[out] != a:
            reasons.append(f"aggregate {_agg(a)} -> {_agg(an[out])}" + (f" (output {_output(out)})" if out else ""))
    added = [out for out in an if out not in ao]
    if added:
        if not reasons:
            additive = True
        reasons.append("adds output " + ", ".join(f"{_output(o)} ({_agg(an[o])})" for o in added))
    if old["semantics"] != new["semantics"]:
        reasons.append(f"relplan's semantics version {old['semantics']} -> {new['semantics']}")
        additive = False
    if not reasons:  # the fingerprints differ, so something does: say so rather than call it safe
        reasons.append("the normalized IR differs")
    return reasons, additive


def _window(w: dict[str, Any]) -> str:
    return repr(WindowSpec(w["kind"], w["size"], w["slide"], w.get("closed", "right")))


def _expr(d: Any) -> str:
    if d is None:
        return "(none)"
    from relplan.catalog.serialize import expr_from_dict

    return expr_from_dict(d).sql()


def _keys(keys: list[Any]) -> str:
    out = []
    for name, e in keys:
        text = _expr(e)
        out.append(name if text == name else f"{name} := {text}")
    return ", ".join(out)


def _agg(a: dict[str, Any]) -> str:
    inner = "*" if a["arg"] is None else _expr(a["arg"])
    text = f"{a['func']}({inner})"
    if a["filter"] is not None:
        text += f" filter ({_expr(a['filter'])})"
    return text


def _output(suffix: str | None) -> str:
    return "(the feature's value)" if suffix is None else f"_{suffix}"


# ---- merged rows ------------------------------------------------------------------------------

_HIDDEN = "__right_"  # compiler/joins.py's name for a right key named like the left one


def _rows_diffs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two features' merged relations, join by join and column by column."""
    ro, rn = old.get("rows"), new.get("rows")
    if ro is None or rn is None:
        joins = _joins(rn if ro is None else ro)
        what = "; ".join(joins) or "a merge"
        return [f"now aggregates merged rows ({what})" if ro is None else f"no longer aggregates merged rows ({what})"]
    reasons: list[str] = []
    jo, jn = _joins(ro), _joins(rn)
    if len(jo) == len(jn):
        reasons += [f"join {a} -> {b}" for a, b in zip(jo, jn) if a != b]
    else:
        reasons.append(f"joins [{'; '.join(jo)}] -> [{'; '.join(jn)}]")
    co, cn = read_columns(old), read_columns(new)
    for src in sorted(set(co) | set(cn)):
        if src not in cn:
            reasons.append(f"no longer reads source {src}")
            continue
        if src not in co:
            reasons.append(f"reads source {src} too ({', '.join(cn[src])})")
            continue
        if src == old["source"]["name"]:
            continue  # the feature's own source: said above
        for c in co[src]:
            if c in cn[src] and co[src][c] != cn[src][c]:
                reasons.append(f"input column {src}.{c} retyped {co[src][c]} -> {cn[src][c]}")
        for c in sorted(set(cn[src]) - set(co[src])):
            reasons.append(f"reads {src}.{c} too")
        for c in sorted(set(co[src]) - set(cn[src])):
            reasons.append(f"no longer reads {src}.{c}")
    fo, fn = _filters(ro), _filters(rn)
    if fo != fn:
        reasons.append(f"filters of the merged rows [{', '.join(fo)}] -> [{', '.join(fn)}]")
    if not reasons:
        reasons.append("the merged relation differs")
    return reasons


def _joins(rows: dict[str, Any]) -> list[str]:
    """Each join of a relation in words: kind, sides, keys, bounds or frame."""
    from relplan.ir.windows import format_duration

    entries = rows["nodes"]

    def sources(i: int) -> str:
        e = entries[i]
        if e["kind"] == "Source":
            return e["name"]
        refs = [e[k] for k in ("input", "left", "right", "spine", "events") if k in e] + e.get("members", [])
        return "+".join(dict.fromkeys(sources(r) for r in refs))

    def named(i: int, name: str) -> str:
        """A column of entry ``i`` by its name in the source it comes from (a merge renames
        a right column the left side also has)."""
        e = entries[i]
        while e["kind"] in ("Project", "Filter"):
            if e["kind"] == "Project":
                expr = dict((n, x) for n, x in e["exprs"]).get(name)
                if expr is None or expr["kind"] != "Column":
                    return name.removeprefix(_HIDDEN)
                name = expr["name"]
            e = entries[e["input"]]
        return name.removeprefix(_HIDDEN)

    def keys(e: dict[str, Any], left: str, right: str) -> str:
        return ", ".join(f"{named(e[left], a)} = {named(e[right], b)}" for a, b in e["on"])

    def dur(us: int) -> str:
        return format_duration(us) if us else "0s"

    out = []
    for e in entries:
        if e["kind"] == "Join":
            sides = f"{sources(e['left'])} with {sources(e['right'])}"
            if "left_time" in e:
                text = (f"interval join ({e['how']}) of {sides} on {keys(e, 'left', 'right')}, "
                        f"{named(e['right'], e['right_time'])} within "
                        f"[{e['left_time']} - {dur(e['before'])}, {e['left_time']} + {dur(e['after'])}]")
            else:
                text = f"{'lookup' if e.get('lookup') else 'plain'} join ({e['how']}) of {sides} on {keys(e, 'left', 'right')}"
            out.append(text)
        elif e["kind"] == "AsOfJoin":
            frames = []
            for w in e["windows"]:
                f = w["frame"]
                lower = "-inf" if f["lower"] is None else f"t-{dur(f['lower'])}"
                frames.append(f"{'[' if f['lower_inclusive'] else '('}{lower}, t{'-' + dur(f['upper']) if f['upper'] else ''}"
                              f"{']' if f['upper_inclusive'] else ')'}")
            out.append(f"as-of join of {sources(e['spine'])} with {sources(e['events'])} on {keys(e, 'spine', 'events')} at "
                       f"{e['spine_time']} (versions by {e['event_time']}, frame {', '.join(frames)})")
    return out


def _filters(rows: dict[str, Any]) -> list[str]:
    return [_expr(e["predicate"]) for e in rows["nodes"] if e["kind"] == "Filter"]


# ---- derived features -------------------------------------------------------------------------


def _derived_diffs(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], bool]:
    """A derived feature's reasons; non-breaking only if every input changed only by adding outputs."""
    if "derived" not in old:
        return ["now a derived feature (rp.derived), was a transformation's feature"], False
    if "derived" not in new:
        return ["now a transformation's feature, was a derived feature (rp.derived)"], False
    reasons: list[str] = []
    additive = True
    if old["derived"] != new["derived"]:
        reasons.append(f"expression {_expr(old['derived'])} -> {_expr(new['derived'])}")
        additive = False
    if old["request"] != new["request"]:
        reasons.append(f"request fields [{_fields(old['request'])}] -> [{_fields(new['request'])}]")
        additive = False
    io = {i["name"]: i for i in old["inputs"]}
    inn = {i["name"]: i for i in new["inputs"]}
    if list(io) != list(inn):
        reasons.append(f"inputs [{', '.join(io)}] -> [{', '.join(inn)}]")
        additive = False
    for name in inn:
        if name in io and io[name]["parts"] != inn[name]["parts"]:
            sub, add = _semantic_diffs(io[name]["parts"], inn[name]["parts"])
            reasons += [f"input feature {name}: {r}" for r in sub]
            additive = additive and add
    if old["semantics"] != new["semantics"]:
        reasons.append(f"relplan's semantics version {old['semantics']} -> {new['semantics']}")
        additive = False
    if not reasons:
        reasons.append("the normalized IR differs")
        additive = False
    return reasons, additive


def _fields(fields: list[Any]) -> str:
    return ", ".join(f"{n} {t}" for n, t in fields)
