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
version, the source columns its IR reads (``fingerprint.reads``), so dropping a
column breaks exactly the features whose lineage touches it.
"""

from __future__ import annotations

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
    def source(self) -> str:
        return self.semantics["source"]["name"]  # type: ignore[no-any-return]

    @property
    def reads(self) -> dict[str, str]:
        """Source column -> its type, for every column the feature reads."""
        return dict(self.semantics["source"]["columns"])


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
    reads = [(f.name, f.reads) for f in readers]
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
    return repr(WindowSpec(w["kind"], w["size"], w["slide"]))


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
