"""Spark: IR -> Spark SQL (sqlglot's Spark dialect), run on pyspark.

By default a local SparkSession (``local[*]``, session time zone UTC, ANSI mode)
is started on first use and kept for the process; pass ``session=`` to run on
your own (for example one connected to a cluster). Arrow inputs are handed to
Spark as Parquet files in a staging directory (``staging_dir=``; on a cluster it
must be a path every executor can read), so large inputs never pass through the
Python-to-JVM socket; inputs may also be names of tables the session already has.

Where Spark's defaults differ from the IR's semantics the lowering says so
explicitly: times are converted with UNIX_MICROS / TIMESTAMP_MICROS (independent
of the session time zone), ``COUNT(DISTINCT ...)`` over a window, which Spark
refuses, becomes ``SIZE(COLLECT_SET(...))``, ``TRUNC`` (a date function in Spark)
is not used for casts. While a plan runs, the session's time zone is UTC and ANSI
mode is on, so that integer overflow raises as it does on DuckDB instead of
wrapping around; a session passed in gets its settings back afterwards.

Results come back through Arrow where this process's pyspark can use the installed
pyarrow (pyspark 4 needs pyarrow >= 18, which apache-flink's pins exclude when both
are installed), and otherwise as rows converted to the IR's types: the same table,
slower (see ``arrow_collect_works``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator

from relplan.backends.arrow_io import in_ir_types
from relplan.backends.jvm import java_root_message
from relplan.backends.sql import SqlLowering, col, lit
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import DataError, EngineError, RelplanError
from relplan.ir.expr import Cast, Expr
from relplan.ir.graph import walk
from relplan.ir.nodes import Sink, Source

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# At DEBUG: each input staged, each query's SQL, and its times (ms) to analyze, to run and collect.
_log = logging.getLogger("relplan.engine.spark")

# Session settings every plan runs under (see the module docstring).
RUN_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "true"}


class RelplanSpark(Spark):
    """sqlglot's Spark dialect, less its SELECT rewrites (QUALIFY, DISTINCT ON, UNNEST,
    ANY -> EXISTS), which relplan's ASTs never need: they copied and walked every
    SELECT, a sixth of the time to emit Spark SQL. Registered as "relplanspark"."""

    class Generator(SparkGenerator):
        TRANSFORMS: ClassVar = {k: v for k, v in SparkGenerator.TRANSFORMS.items() if k is not exp.Select}


class SparkLowering(SqlLowering):
    dialect = "relplanspark"
    engine = "spark"
    # SUM(BIGINT) is BIGINT, AVG is DOUBLE; COUNT(DISTINCT) is not native in windows (SIZE is INT).
    NATIVE_RESULT: ClassVar[frozenset[str]] = frozenset(
        {"count", "sum", "mean", "min", "max", "var", "std", "first", "last"}
    )

    def epoch_us(self, e: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="UNIX_MICROS", expressions=[e])

    def from_epoch_us(self, e: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="TIMESTAMP_MICROS", expressions=[e])

    def timestamp_literal(self, v: dt.datetime) -> exp.Expression:
        # An instant, whatever the session time zone: a string literal would be read in it.
        aware = v if v.tzinfo is not None else v.replace(tzinfo=dt.timezone.utc)
        micros = (aware - _EPOCH) // dt.timedelta(microseconds=1)
        return self.from_epoch_us(lit(micros) if micros >= 0 else exp.Neg(this=lit(-micros)))

    def hop_starts(self, last: exp.Expression, first: exp.Expression, slide: int) -> exp.Expression:
        return exp.Explode(this=exp.Anonymous(this="SEQUENCE", expressions=[first, last, lit(slide)]))

    def expr(self, e: Expr) -> exp.Expression:
        if isinstance(e, Cast) and e.operand.dtype == T.Float64 and e.dtype == T.Int64:
            # Spark's CAST(DOUBLE AS BIGINT) already truncates toward zero; TRUNC is a date function.
            return self.cast(super().expr(e.operand), e.dtype)
        return super().expr(e)

    def agg(self, a: AggCall) -> exp.Expression:
        if a.func == "mean" and a.arg is not None and a.arg.dtype == T.Int64:
            return self.exact_mean(a)
        return super().agg(a)

    def over(self, a: AggCall, **window: exp.Expression | list[exp.Expression]) -> exp.Expression:
        if a.func == "mean" and a.arg is not None and a.arg.dtype == T.Int64:
            return self.exact_mean(a, window)
        if a.func == "count_distinct":
            # Spark refuses DISTINCT in a window; COLLECT_SET skips NULLs as COUNT(DISTINCT) does.
            value = self.masked(a.arg, a.filter)
            distinct = exp.Window(this=exp.Anonymous(this="COLLECT_SET", expressions=[value]), **window)
            return exp.ArraySize(this=distinct)
        return super().over(a, **window)


def _java_hint() -> str:
    if shutil.which("java") or os.environ.get("JAVA_HOME"):
        return ""
    return " (no Java found: Spark needs a Java 17 runtime, e.g. apt-get install openjdk-17-jre-headless)"


_LOCAL_SESSION: Any = None


def local_session() -> Any:
    """The process's local SparkSession, started on first use (5-8 s) and then reused."""
    global _LOCAL_SESSION
    if _LOCAL_SESSION is not None and _LOCAL_SESSION.sparkContext._jsc is not None:
        return _LOCAL_SESSION
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError("engine 'spark' needs pyspark: pip install 'relplan[spark]'") from None
    cores = os.cpu_count() or 2
    builder = (
        SparkSession.builder.master("local[*]")
        .appName("relplan")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .config("spark.driver.memory", os.environ.get("RELPLAN_SPARK_DRIVER_MEMORY", "2g"))
        # relplan's local session keeps no tables: its warehouse is a temporary folder, not
        # a spark-warehouse folder in whatever directory the process runs in.
        .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="relplan-spark-warehouse-"))
        # Arrow for toPandas / createDataFrame(pandas) in the user's code too, unless the
        # installed pyarrow is too old for this pyspark: then those run without it.
        .config("spark.sql.execution.arrow.pyspark.enabled", str(arrow_collect_works()).lower())
    )
    for k, v in RUN_CONF.items():
        builder = builder.config(k, v)
    try:
        _LOCAL_SESSION = builder.getOrCreate()
    except Exception as e:  # the JVM failing to start surfaces as a bare RuntimeError / Py4J error
        raise EngineError(f"could not start a local Spark session: {e}{_java_hint()}") from e
    # A failing query is reported as an EngineError carrying Spark's message; its
    # executor's stack trace on stderr would only repeat it.
    _LOCAL_SESSION.sparkContext.setLogLevel("FATAL")
    return _LOCAL_SESSION


_ARROW_COLLECT: bool | None = None


def arrow_collect_works() -> bool:
    """Whether this process's pyspark can hand results over as Arrow with the installed pyarrow.

    Decided once per process (both are imported once). pyspark 4's ``toArrow`` first
    runs pyspark's own ``require_minimum_pyarrow_version`` (pyarrow >= 18 in 4.0-4.3)
    and fails without it; asking that same function, rather than copying its number,
    stays right when a later pyspark raises its minimum. pyspark 3.5 has no ``toArrow``:
    its ``_collect_as_arrow`` checks nothing and works with every pyarrow relplan
    accepts (>= 14; pyspark 3.5's own minimum is 4.0).
    """
    global _ARROW_COLLECT
    if _ARROW_COLLECT is None:
        from pyspark.sql import DataFrame

        _ARROW_COLLECT = True
        if hasattr(DataFrame, "toArrow"):
            from pyspark.sql.pandas.utils import require_minimum_pyarrow_version

            try:
                require_minimum_pyarrow_version()
            except ImportError:  # PySparkImportError: pyarrow missing or older than pyspark needs
                _ARROW_COLLECT = False
    return _ARROW_COLLECT


def collect(df: Any, sink: Sink, *, arrow: bool | None = None) -> pa.Table:
    """A DataFrame's rows as a pyarrow Table in ``sink``'s IR types.

    ``arrow=None`` takes the Arrow path where it works (``arrow_collect_works``), else
    rows; the tests force each to compare them.
    """
    if arrow if arrow is not None else arrow_collect_works():
        return in_ir_types(_collect_arrow(df), sink, "Spark")
    return _collect_rows(df, sink)


def _collect_arrow(df: Any) -> pa.Table | None:
    """A DataFrame's rows as Arrow (None when there are no rows)."""
    if hasattr(df, "toArrow"):  # pyspark >= 4
        return df.toArrow()
    if hasattr(df, "_collect_as_arrow"):  # pyspark 3.5: the path toPandas takes with Arrow on
        batches = df._collect_as_arrow()
        return pa.Table.from_batches(batches) if batches else None
    pdf = df.toPandas()  # e.g. a Spark Connect session of pyspark 3.5
    return pa.Table.from_pandas(pdf, preserve_index=False) if len(pdf) else None


def _collect_rows(df: Any, sink: Sink) -> pa.Table:
    """``collect()`` without Arrow, each column converted to its IR type exactly.

    Spark casts each column to the IR's type first (as the Arrow path's cast does here),
    so Int64s arrive as Python ints (no float round trip). Times never become Python
    datetimes, which pyspark builds in the Python process's local time zone (an hour
    is ambiguous at a DST change): timestamps come as UNIX_MICROS and dates as
    UNIX_DATE integers, and Arrow casts those to ``timestamp[us, UTC]`` and ``date32``.
    """
    lowering = SparkLowering()
    selects = []
    for f in sink.schema:
        value: exp.Expression = col(f.name)
        if f.dtype != T.Null:  # a bare NULL column: all None as it is
            value = lowering.cast(value, f.dtype)
        if f.dtype == T.Timestamp:
            value = lowering.epoch_us(value)
        elif f.dtype == T.Date:
            value = exp.Anonymous(this="UNIX_DATE", expressions=[value])
        selects.append(value.sql(dialect=lowering.dialect))
    rows = df.selectExpr(*selects).collect()
    columns = list(zip(*rows)) if rows else [() for _ in selects]
    arrays = []
    for f, values in zip(sink.schema, columns):
        if f.dtype == T.Timestamp:
            arrays.append(pa.array(values, pa.int64()).cast(f.dtype.to_arrow()))
        elif f.dtype == T.Date:
            arrays.append(pa.array(values, pa.int32()).cast(f.dtype.to_arrow()))
        else:
            arrays.append(pa.array(values, f.dtype.to_arrow()))
    return pa.Table.from_arrays(arrays, schema=sink.schema.to_arrow())


# Spark type names (DataType.typeName()) accepted for each IR type in a named table.
_SPARK_TYPES = {
    "Int64": {"long", "integer", "short", "byte"},
    "Float64": {"double", "float"},
    "String": {"string"},
    "Bool": {"boolean"},
    "Timestamp": {"timestamp", "timestamp_ntz"},
    "Date": {"date"},
}


class SparkBackend:
    """Runs plans on Spark; ``session=`` a SparkSession of yours, else a local one.

    ``on_step``: called with a short text as a run moves on (staging inputs, each
    query): what a caller's progress bar shows."""

    name = "spark"
    accepts_table_names = True
    on_step: Callable[[str], None] | None = None

    def __init__(self, session: Any | None = None, staging_dir: str | None = None) -> None:
        self._session = session
        self._staging_dir = staging_dir
        self.lowering = SparkLowering()

    def to_sql(self, sinks: tuple[Sink, ...], *, pretty: bool = True) -> str:
        return self.lowering.to_sql(sinks, pretty=pretty)

    @property
    def session(self) -> Any:
        return self._session if self._session is not None else local_session()

    def run(self, sinks: tuple[Sink, ...], tables: dict[str, pa.Table | str]) -> dict[str, pa.Table]:
        from relplan.backends.duckdb_udf import refuse_python_udfs

        refuse_python_udfs(sinks, self.name)  # before staging the inputs, which runs a job
        spark = self.session
        saved = {k: spark.conf.get(k, None) for k in RUN_CONF}
        for k, v in RUN_CONF.items():
            spark.conf.set(k, v)
        staging = tempfile.mkdtemp(prefix="relplan-spark-", dir=self._staging_dir)
        views: dict[str, str] = {}
        debug = _log.isEnabledFor(logging.DEBUG)
        step = self.on_step
        t0 = t1 = 0.0
        try:
            for src in (n for n in walk(sinks) if isinstance(n, Source)):
                if step is not None:
                    step(f"staging {src.name}")
                if debug:
                    t0 = time.perf_counter()
                views[src.name] = self._register(spark, src, tables[src.name], staging)
                if debug:
                    given = tables[src.name]
                    what = f"Spark table {given!r}" if isinstance(given, str) else f"{given.num_rows} rows, as Parquet"
                    _log.debug("spark: input %r (%s) as view %s in %.1f ms", src.name, what, views[src.name],
                               (time.perf_counter() - t0) * 1e3)
            lowering = SparkLowering(views)
            out = {}
            for s in sinks:
                # Not render(): the view names are new on every run, the whole text never repeats.
                sql = lowering.render_ctes(s, pretty=False)
                if step is not None:
                    step(f"query {s.name}")
                if debug:
                    _log.debug("spark: output %r, SQL:\n%s", s.name, sql)
                    t0 = time.perf_counter()
                try:
                    df = spark.sql(sql)
                    if debug:
                        t1 = time.perf_counter()
                    out[s.name] = collect(df, s)
                    if debug:
                        _log.debug("spark: output %r: %d rows; analyzed in %.1f ms, ran and collected in %.1f ms",
                                   s.name, out[s.name].num_rows, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)
                except RelplanError:  # the result does not fit its IR types: says so itself
                    raise
                except Exception as e:  # AnalysisException, Py4JJavaError, ...: the engine's own words
                    raise EngineError(f"Spark failed on output {s.name!r}: {spark_message(e)}\nSQL:\n{sql}") from e
            return out
        finally:
            for view in views.values():
                spark.catalog.dropTempView(view)
            for k, v in saved.items():
                if v is None:
                    spark.conf.unset(k)
                else:
                    spark.conf.set(k, v)
            shutil.rmtree(staging, ignore_errors=True)

    def _register(self, spark: Any, src: Source, table: pa.Table | str, staging: str) -> str:
        """A temporary view holding ``src``'s columns in canonical types; returns its name."""
        # A plain word: createOrReplaceTempView parses its argument as a (multi-part) name.
        view = f"relplan_{re.sub(r'[^0-9A-Za-z_]', '_', src.name)}_{uuid.uuid4().hex[:12]}"
        if isinstance(table, str):
            df = self._named_table(spark, src, table)
        else:
            path = os.path.join(staging, f"{len(os.listdir(staging))}.parquet")
            pq.write_table(table, path)
            df = read_staged_parquet(spark, path)
        df.createOrReplaceTempView(view)
        return view

    def _named_table(self, spark: Any, src: Source, name: str) -> Any:
        """The session's table ``name``, checked against the source and cast to its types."""
        from pyspark.sql import functions as F

        try:
            df = spark.table(name)
        except Exception as e:
            raise DataError(f"source {src.name!r}: Spark has no table {name!r}: {spark_message(e)}") from None
        have = {f.name: f.dataType for f in df.schema.fields}
        cols = []
        for f in src.columns:
            if f.name not in have:
                raise DataError(
                    f"Spark table {name!r} for source {src.name!r} lacks column {f.name!r} ({f.dtype}); "
                    f"it has {list(have)}"
                )
            got = have[f.name].typeName()
            if got not in _SPARK_TYPES[f.dtype.name]:
                raise DataError(
                    f"column {f.name!r} of Spark table {name!r} is {got}, but source {src.name!r} declares {f.dtype}"
                )
            c = F.col(f"`{f.name.replace('`', '``')}`").cast(self.lowering.dtype(f.dtype).sql("spark"))
            # What conform_table does for Arrow inputs: NaN is NULL, every event has a time.
            if f.dtype == T.Float64:
                c = F.when(F.isnan(c), F.lit(None)).otherwise(c)
            if f.name == src.event_time:
                message = f"event-time column {f.name!r} of Spark table {name!r} (source {src.name!r}) has a NULL"
                c = F.when(c.isNull(), F.raise_error(message)).otherwise(c)
            cols.append(c.alias(f.name))
        return df.select(*cols)


def read_staged_parquet(spark: Any, path: str) -> Any:
    """A Parquet file pyarrow wrote, as a DataFrame with its dates and times as written.

    pyarrow writes proleptic Gregorian dates and times, as Spark >= 3 keeps them. For a
    file no Spark wrote, Spark's default (``datetimeRebaseMode`` EXCEPTION) refuses any
    date before 1582-10-15 rather than guess its calendar; CORRECTED reads the values
    unchanged, for this read only (the session's settings are left alone).
    """
    return (
        spark.read.option("datetimeRebaseMode", "CORRECTED").option("int96RebaseMode", "CORRECTED").parquet(path)
    )


def spark_message(e: BaseException) -> str:
    """Spark's own words for a failure: the message of the root cause of a Java
    exception, else the first ``[ERROR_CLASS] ...`` line, else the first line."""
    text = java_root_message(e) or str(e)
    found = re.search(r"\[[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*\][^\n]*", text)
    if found:
        return found.group(0).strip()
    lines = text.strip().splitlines()
    return lines[0] if lines else type(e).__name__
