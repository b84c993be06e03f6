"""The feature catalog: the IR as JSON, fingerprints, the catalog file, column lineage, plan/apply.

    cat = rp.Catalog("features.db")
    print(cat.plan(definitions))     # added / removed / unchanged / metadata-only / non-breaking / breaking
    cat.apply(definitions)           # refuses breaking changes to deployed features
    train = rp.pitc_join_features(spine, ["tx_count_1h", "amt_mean_1d@v2"], catalog=cat, tables=...)
"""

from relplan.catalog.changes import Change
from relplan.catalog.definitions import DefinitionError, collect, load_module
from relplan.catalog.fingerprint import fingerprint
from relplan.catalog.store import (
    Catalog,
    CatalogError,
    CatalogPlan,
    ConflictError,
    Entry,
    GuardrailError,
    HistoryEntry,
)

__all__ = [
    "Catalog", "CatalogError", "CatalogPlan", "Change", "ConflictError", "DefinitionError", "Entry", "GuardrailError",
    "HistoryEntry", "collect", "fingerprint", "load_module",
]
