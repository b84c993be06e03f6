"""relplan: declare a feature once; compile, optimize and run it on DuckDB, Spark or Flink.

    import relplan as rp

    class Transactions(rp.Source):
        account_id: rp.Int64
        status: rp.String
        ts: rp.Timestamp = rp.event_time()

    @rp.transformation
    def failed_count(tx: Transactions, wspec: rp.WindowSpec):
        return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()

    plan = rp.compile([failed_count(window=rp.sliding("1d"))])
    table = rp.execute(plan, engine="duckdb", tables={"Transactions": arrow_table})
"""

from __future__ import annotations

from relplan.compiler.caches import clear_caches
from relplan.compiler.compile import compile  # noqa: A004 - the public name
from relplan.compiler.dsl import DataFrame, Series
from relplan.compiler.execute import execute, execute_all
from relplan.compiler.optimize import optimize
from relplan.compiler.pitc import latest, pitc_join_features, pitc_plan, pitc_spine
from relplan.compiler.plan import Plan
from relplan.compiler.source import Source, event_time, key
from relplan.compiler.transformation import Feature, transformation
from relplan.compiler.windowspec import WindowSpec, hopping, lifetime, sliding, tumbling
from relplan.ir.errors import (
    DataError,
    EngineError,
    FeatureError,
    OptimizerError,
    RelplanError,
    SchemaError,
    TypeMismatchError,
    UnsupportedError,
    WindowError,
)
from relplan.ir.types import Bool, DataType, Date, Float64, Int64, String, Timestamp
from relplan.compiler.statistics import measure_statistics
from relplan.rules import OptimizerConfig, SourceStats, Statistics
from relplan.rules.placement import Knobs
from relplan.catalog import Catalog, CatalogError, ConflictError, GuardrailError, fingerprint
from relplan.serving import ConsistencyReport, OnlineStore, StoreError, check_online_consistency, online_store

__version__ = "0.1.0"

__all__ = [
    "Bool", "clear_caches", "DataError", "DataFrame", "DataType", "Date", "EngineError", "Feature", "FeatureError",
    "Float64", "Int64", "Knobs", "OptimizerConfig", "OptimizerError", "SourceStats", "Statistics", "measure_statistics", "Plan", "RelplanError", "SchemaError", "Series", "Source",
    "String", "Timestamp", "TypeMismatchError", "UnsupportedError", "WindowError", "WindowSpec",
    "compile", "event_time", "execute", "execute_all", "hopping", "key", "latest", "lifetime", "optimize",
    "pitc_join_features", "pitc_plan", "pitc_spine", "sliding", "OnlineStore", "StoreError", "online_store", "ConsistencyReport", "check_online_consistency",
    "transformation", "tumbling", "Catalog", "CatalogError", "ConflictError", "GuardrailError", "fingerprint",
]
