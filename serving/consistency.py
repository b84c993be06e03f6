"""The consistency check: what was served, replayed through training data, compared.

    store = rp.online_store(url, log_requests=True)
    ... store.get_online_features(...) ...
    report = rp.check_online_consistency(store, tables={"Transactions": all_events})
    assert report.mismatches == 0, report

Each logged request (its keys and request time) becomes a spine row of
``rp.pitc_join_features`` over the same features and the events as they are now;
per feature the report counts rows compared, NULL served where training has a
value, a value served where training has NULL, differing values, and the largest
relative difference. Events that arrived after a request was served make it
differ, as they should: replay against the events the store had at the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


from relplan.compiler.derived import DerivedFeature
from relplan.compiler.pitc import pitc_join_features
from relplan.compiler.transformation import Feature
from relplan.ir.errors import FeatureError
from relplan.serving.store import OnlineStore


@dataclass
class FeatureConsistency:
    rows: int = 0
    served_null_trained_value: int = 0
    served_value_trained_null: int = 0
    value_mismatches: int = 0
    max_relative_difference: float = 0.0

    @property
    def mismatches(self) -> int:
        return self.served_null_trained_value + self.served_value_trained_null + self.value_mismatches


@dataclass
class ConsistencyReport:
    features: dict[str, FeatureConsistency] = field(default_factory=dict)

    @property
    def mismatches(self) -> int:
        return sum(f.mismatches for f in self.features.values())

    @property
    def rows(self) -> int:
        return max((f.rows for f in self.features.values()), default=0)

    def __str__(self) -> str:
        head = f"{'feature':<32} {'rows':>7} {'null/value':>10} {'value/null':>10} {'differ':>7} {'max rel diff':>12}"
        lines = [head]
        for name, f in self.features.items():
            lines.append(
                f"{name:<32} {f.rows:>7} {f.served_null_trained_value:>10} {f.served_value_trained_null:>10} "
                f"{f.value_mismatches:>7} {f.max_relative_difference:>12.3g}"
            )
        lines.append(f"served vs training data: {self.mismatches} mismatches in {self.rows} logged rows")
        return "\n".join(lines)


def _equal(a: Any, b: Any, tolerance: float) -> tuple[bool, float]:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True, 0.0
        if a == b:
            return True, 0.0
        rel = abs(a - b) / max(abs(a), abs(b), 1e-300)
        return rel <= tolerance, rel
    return a == b, 0.0


def check_online_consistency(
    store: OnlineStore,
    tables: Mapping[str, Any],
    *,
    features: Iterable[Feature | DerivedFeature] = (),
    engine: str = "duckdb",
    tolerance: float = 1e-9,
) -> ConsistencyReport:
    """Replay ``store``'s request log (``rp.online_store(..., log_requests=True)``) through
    ``rp.pitc_join_features`` over ``tables`` and compare, per feature. ``features``:
    definitions of columns served by name that this store object has not seen.
    Derived features are replayed too: their request fields, logged with each
    request, are the spine's columns."""
    if not isinstance(store, OnlineStore):
        raise FeatureError(f"check_online_consistency() takes an online store, got {type(store).__name__}")
    if not store.log_requests:
        raise FeatureError(f"the online store {store.url} does not log requests: open it with log_requests=True")
    given = {c: f for f in features for c in f.columns}
    report = ConsistencyReport()
    for columns, _, logged in store.request_log():
        feats: dict[str, Feature | DerivedFeature] = {}
        for c in columns:
            f = given.get(c) or store.feature_of(c)
            if f is None:
                raise FeatureError(f"served feature {c!r} has no definition here: pass features=[...] to check it")
            feats.setdefault(f.name, f)
        keys = [n for n in logged.column_names if n not in columns]
        spine = logged.select(keys)
        trained = pitc_join_features(spine, list(feats.values()), tables=tables, engine=engine, time="request_time")
        for c in columns:
            stats = report.features.setdefault(c, FeatureConsistency())
            for s, t in zip(logged.column(c).to_pylist(), trained.column(c).to_pylist()):
                stats.rows += 1
                if s is None and t is not None:
                    stats.served_null_trained_value += 1
                elif s is not None and t is None:
                    stats.served_value_trained_null += 1
                elif s is not None:
                    ok, rel = _equal(s, t, tolerance)
                    stats.max_relative_difference = max(stats.max_relative_difference, rel)
                    stats.value_mismatches += not ok
    return report
