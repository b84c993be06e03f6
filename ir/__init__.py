"""relplan's relational algebra: types, schemas, expressions, plan nodes, traversal, printing.

Imports nothing above it in relplan.
"""

from __future__ import annotations

from relplan.ir.aggregates import AGG_FUNCS, AggCall
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
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Column, Expr, InList, Literal, Unary
from relplan.ir.graph import to_digraph, transform, use_counts, walk
from relplan.ir.nodes import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
    Filter,
    Join,
    Node,
    Project,
    Sink,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.ir.printer import explain
from relplan.ir.schema import Field, Schema
from relplan.ir.types import Bool, DataType, Date, Float64, Int64, String, Timestamp
from relplan.ir.windows import Frame, TimeWindow, format_duration, parse_duration

__all__ = [
    "AGG_FUNCS", "AggCall", "Aggregate", "Binary", "Bool", "Case", "Cast", "Coalesce", "Column",
    "DataError", "DataType", "Date", "EngineError", "Expr", "FeatureError", "Field", "Filter",
    "Float64", "Frame", "InList", "Int64", "Join", "Literal", "Node", "OptimizerError", "Project",
    "RelplanError", "Schema", "SchemaError", "Sink", "Source", "String", "TimeWindow",
    "TimeWindowAggregate", "Timestamp", "TypeMismatchError", "Unary", "Union", "UnsupportedError",
    "WINDOW_END", "WINDOW_START", "WindowAggregate", "WindowError", "explain", "format_duration",
    "parse_duration", "to_digraph", "transform", "use_counts", "walk",
]
