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

from typing import TYPE_CHECKING

from relplan.catalog import Catalog, CatalogError, ConflictError, GuardrailError, fingerprint
from relplan.compiler import progress
from relplan.compiler.caches import clear_caches
from relplan.compiler.compile import compile
from relplan.compiler.derived import DerivedFeature, Request, derived
from relplan.compiler.dsl import DataFrame, FeatureBody, GroupBy, Series, coalesce, where
from relplan.compiler.execute import execute, execute_all
from relplan.compiler.joins import merge, merge_asof
from relplan.compiler.optimize import optimize
from relplan.compiler.pitc import latest, pitc_join_features, pitc_plan, pitc_spine
from relplan.compiler.progress import set_progress
from relplan.compiler.plan import Plan
from relplan.compiler.source import Source, event_time, key
from relplan.compiler.sql import sql
from relplan.compiler.sql.feature import sql_feature, sql_features
from relplan.compiler.statistics import measure_statistics
from relplan.compiler.transformation import Feature, Transformation, transformation
from relplan.compiler.udf import udf
from relplan.compiler.windowspec import WindowSpec, hopping, lifetime, sliding, tumbling
from relplan.ir.errors import (
    DataError,
    EngineError,
    FeatureError,
    OptimizerError,
    RelplanError,
    SchemaError,
    TypeMismatchError,
    SqlError,
    UnsupportedError,
    WindowError,
)
from relplan.ir.types import DataType
from relplan.rules import OptimizerConfig, SourceStats, Statistics
from relplan.rules.placement import Knobs
from relplan.serving import ConsistencyReport, OnlineStore, StoreError, check_online_consistency, online_store

if TYPE_CHECKING:
    # To a type checker the column types are column classes (Series subclasses), so that
    # a source's ``amt: rp.Float64`` makes ``tx.amt`` a column in its transformations
    # (and ``tx.amount`` an error); at run time they are the DataType values a source's
    # declaration is read with (relplan.ir.types).
    from relplan.compiler.dsl import BoolColumn as Bool
    from relplan.compiler.dsl import DateColumn as Date
    from relplan.compiler.dsl import Float64Column as Float64
    from relplan.compiler.dsl import Int64Column as Int64
    from relplan.compiler.dsl import StringColumn as String
    from relplan.compiler.dsl import TimestampColumn as Timestamp
else:
    from relplan.ir.types import Bool, Date, Float64, Int64, String, Timestamp

__version__ = "0.1.0"

__all__ = [
    "Bool",
    "Catalog",
    "CatalogError",
    "ConflictError",
    "ConsistencyReport",
    "DataError",
    "DataFrame",
    "DataType",
    "Date",
    "DerivedFeature",
    "EngineError",
    "Feature",
    "FeatureBody",
    "FeatureError",
    "Float64",
    "GroupBy",
    "GuardrailError",
    "Int64",
    "Knobs",
    "OnlineStore",
    "OptimizerConfig",
    "OptimizerError",
    "Plan",
    "RelplanError",
    "Request",
    "SchemaError",
    "Series",
    "Source",
    "SourceStats",
    "SqlError",
    "Statistics",
    "StoreError",
    "String",
    "Timestamp",
    "Transformation",
    "TypeMismatchError",
    "UnsupportedError",
    "WindowError",
    "WindowSpec",
    "check_online_consistency",
    "clear_caches",
    "coalesce",
    "compile",
    "derived",
    "event_time",
    "execute",
    "execute_all",
    "fingerprint",
    "hopping",
    "key",
    "latest",
    "lifetime",
    "measure_statistics",
    "merge",
    "merge_asof",
    "online_store",
    "optimize",
    "pitc_join_features",
    "pitc_plan",
    "pitc_spine",
    "progress",
    "set_progress",
    "sql",
    "sql_feature",
    "sql_features",
    "sliding",
    "transformation",
    "tumbling",
    "udf",
    "where",
]
