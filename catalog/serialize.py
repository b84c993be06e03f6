"""The IR as JSON: plans, features, sources and plan nodes, versioned and deterministic.

    text = plan.to_json()                      # rp.Plan.from_json(text) == plan
    text = feature.to_json()                   # rp.Feature.from_json(text)
    text = Transactions.to_json()              # rp.Source.from_json(text): a Source class

Every document is a JSON object ``{"relplan": <format version>, "kind": <kind>, ...}``
with ``kind`` one of ``plan``, ``feature``, ``derived``, ``source`` or ``nodes``. ``to_json()``
writes it indented by two spaces (a list of scalars on one line) with sorted keys
and the text's own characters (not ``\\u`` escapes), so that a document diffs well
in git; ``canonical_json``
writes the same object compact (what fingerprints hash). Both are byte-identical
across runs, machines and ``PYTHONHASHSEED`` values: every list is in a defined
order, nothing is written in a set's or dict's iteration order.

Versioning: ``FORMAT_VERSION`` (1) is the version this relplan writes; it reads
every version up to it and refuses a newer one with a ``FormatError`` naming
both. Additive changes (a new optional field whose absence means what it meant
before, a new node or expression kind) keep the version; readers ignore fields
they do not know (and an older reader names a kind it does not know). Anything else (a field renamed, removed, or read differently)
bumps it.

The format, by kind (a ``?`` marks a field that may be null; every field is
written, and every field listed here is required on reading):

- type: the name of a relplan type, ``"Int64"``, ``"Float64"``, ``"String"``,
  ``"Bool"``, ``"Timestamp"``, ``"Date"`` or ``"Null"``.
- schema: ``[[column name, type], ...]`` in column order.
- expression: an object with ``kind`` and, per kind:
  ``Column`` name, type; ``Literal`` type, value_type, value (below);
  ``Binary`` op, left, right; ``Unary`` op, operand; ``InList`` operand, values
  (Literals); ``Cast`` operand, type; ``Coalesce`` args; ``Case`` whens
  (``[[condition, value], ...]``), otherwise; ``PythonUDF`` name, function
  (its import path ``module:qualname``), args, type. A UDF is stored by its
  import path, never its code: writing refuses a function that path does not
  lead back to (a lambda, one defined inside a function or in ``__main__``), and
  reading imports the module named (so read documents you trust only). A literal's ``value_type`` says how
  ``value`` is written: ``null`` (null), ``bool``, ``int``, ``str`` (as JSON),
  ``float`` (a JSON number, ``-0.0`` kept; ``"inf"`` / ``"-inf"`` for the
  infinities), ``timestamp`` (ISO 8601 in UTC with microseconds,
  ``"2024-01-31T12:00:00.000001+00:00"``), ``date`` (``"2024-01-31"``). A
  literal's type is its value's (an ``int`` may also be ``Float64``; ``null`` may
  be of any type).
- aggregate: ``{func, arg?, name, filter?, order?}`` (expressions; ``order`` a Column).
- frame: ``{lower?, lower_inclusive, upper, upper_inclusive, tile?}`` (microseconds);
  time window: ``{size, slide}``; windows: ``[{frame, aggs: [aggregate, ...]}, ...]``.
- nodes: a flat list, inputs before their users, each distinct node once; an
  entry's ``id`` is its position in the list, and a node refers to its inputs by
  their ids (so a DAG stays a DAG and no reader recurses over a plan's depth).
  Per ``kind``: ``Source`` name, columns (schema), event_time?, lateness (us),
  bounded, keys; ``Filter`` input, predicate; ``Project`` input, exprs
  (``[[name, expression], ...]``); ``Aggregate`` input, keys, aggs;
  ``WindowAggregate`` input, keys, order, windows; ``TimeWindowAggregate`` input,
  keys, time, window, aggs; ``Join`` left, right, how, on (``[[left, right], ...]``),
  and only where set: left_time, right_time, before, after (us) of an interval
  join, lookup (``true``);
  ``Union`` members; ``AsOfJoin`` spine, events, on, spine_time, event_time,
  windows, row_id?, lowering?, tile?, estimates (``[[lowering, seconds], ...]``),
  unique_times, and only where set: no_nulls (``true``); ``Sink`` input, name.
- ``nodes`` document: nodes, roots (ids) (``nodes_to_dict(roots)``, ``node_to_dict(node)``).
- ``source`` document (a declared ``rp.Source`` class): class_name, then the
  fields of its Source node (name, columns, event_time?, lateness, bounded, keys).
- ``feature`` document: name, transformation, defined_at?, called_at?,
  description?, owner?, tags, body: ``{source (as a source document, without
  relplan/kind), keys: [[name, expression], ...], spec: {kind, size?, slide?,
  closed? (only "both": a sliding window holding its edge event)},
  mask?, aggs: [[suffix?, aggregate], ...], location?, and only where the feature
  aggregates a merge's rows: rows: {nodes, root}}`` (the merged relation, nodes as
  in a ``nodes`` document, ``root`` the id of its top node).
- ``plan`` document: nodes, outputs (ids of Sinks), features (feature documents
  without relplan/kind), optimized, trace (``[{pass, rule, removed: [ids],
  added: [ids]}, ...]``; the nodes a rule removed and added are in ``nodes``
  too), placement? (``{knobs, features: [{feature, columns, alternatives,
  chosen (an index into alternatives), decided_by, knobs?}], config?, by_output}``
  with knobs, alternatives, the optimizer config and its statistics written
  field by field). A plan read back equals the plan written (outputs, features),
  and has the same trace and placement, so ``explain(verbose=True)`` and
  ``deployment()`` of it are the same as of the original.

- ``derived`` document (``rp.derived(name, expression)``): name, expr (an
  expression over its inputs' output columns and its request fields), inputs
  (the features it reads, as feature documents without relplan/kind, in first-use
  order), request (``[[request name, field, type], ...]``, in first-use order),
  defined_at?, description?, owner?, tags. Its inputs are written whole, not
  named: a derived document (and a catalog version of it) means the same values
  whatever happens to a feature of that name later, and reads back without a
  catalog.

A Source class read back is rebuilt as a new ``rp.Source`` subclass with the
same name, columns, event time, lateness, keys and boundedness. Classes are kept
by their document: reading the same source twice gives the same class, and a
class written in this process is the class read back (so a feature read back in
the process that wrote it equals the original).

Reading never raises anything but ``FormatError`` (a ``RelplanError``): not
JSON, a newer version, a wrong kind, a missing or mistyped field, an unknown
node, expression or type name, a node id that refers to no earlier entry, or an
entry that fails its own validation (the message names the entry).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import numbers
import re
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from relplan.ir import nodes as N
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import RelplanError
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Column, Expr, InList, Literal, PythonUDF, Unary, check_bound
from relplan.ir.schema import Field, Schema
from relplan.ir.windows import Frame, TimeWindow

if TYPE_CHECKING:
    from relplan.compiler.plan import Plan
    from relplan.compiler.source import Source
    from relplan.compiler.transformation import Feature
    from relplan.rules.placement import Placement

FORMAT_VERSION = 1
KINDS = ("plan", "feature", "derived", "source", "nodes")

__all__ = [
    "FORMAT_VERSION", "FormatError", "canonical_json", "check_document", "dumps", "loads",
    "plan_to_dict", "plan_from_dict", "feature_to_dict", "feature_from_dict", "source_to_dict", "source_from_dict",
    "derived_to_dict", "derived_from_dict",
    "nodes_to_dict", "nodes_from_dict", "node_to_dict", "node_from_dict", "expr_to_dict", "expr_from_dict",
    "aggcall_to_dict", "aggcall_from_dict", "schema_to_dict", "schema_from_dict",
]


class FormatError(RelplanError):
    """A document is not relplan JSON this relplan can read (or a value cannot be written)."""


# ---- text ---------------------------------------------------------------------------


def canonical_json(obj: Any) -> str:
    """``obj`` as compact JSON with sorted keys and unescaped text: the form fingerprints hash."""
    return _text(obj, None)


def dumps(d: Any, *, canonical: bool = False) -> str:
    """A document as JSON text: indented by two spaces, keys sorted (``canonical``: compact)."""
    return _text(d, None if canonical else 2)


def _text(obj: Any, indent: int | None) -> str:
    try:
        if indent is None:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        else:
            text = _pretty(obj, indent, 0)
    except RecursionError:
        raise FormatError("cannot write the document: it is nested too deeply for JSON") from None
    except (TypeError, ValueError) as e:
        raise FormatError(f"cannot write the document as JSON: {e}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FormatError(
            f"cannot write the document: a string holds {text[e.start:e.end]!r}, which is no character of UTF-8 "
            "(a lone surrogate)"
        ) from None
    return text


# The readable form breaks lines only in the document's first levels, so that each plan
# node, feature and trace entry is one line (a change is a one-line diff). Deeper values
# are written by json's C encoder on one line each: Python's encoder, which any indent
# needs, took five times as long for a 1,000-feature plan.
_PRETTY_DEPTH = 2


def _pretty(obj: Any, indent: int, depth: int) -> str:
    if depth >= _PRETTY_DEPTH or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj, sort_keys=True, separators=(", ", ": "), ensure_ascii=False, allow_nan=False)
    pad, inner = " " * (indent * depth), " " * (indent * (depth + 1))
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_pretty(obj[k], indent, depth + 1)}"
                 for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if all(not isinstance(x, (dict, list)) for x in obj):  # scalars on one line: ["cc_num", "Int64"]
        return _pretty(obj, indent, _PRETTY_DEPTH)
    return "[\n" + ",\n".join(inner + _pretty(x, indent, depth + 1) for x in obj) + "\n" + pad + "]"




def loads(text: str | bytes | bytearray, kind: str | None = None) -> dict[str, Any]:
    """The document in ``text``, its version checked (and its kind, if ``kind`` is given)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"not a relplan document: not UTF-8 text ({e})") from None
    if not isinstance(text, str):
        raise FormatError(f"not a relplan document: expected JSON text, got {type(text).__name__}")

    def no_constants(name: str) -> Any:
        raise FormatError(f"not a relplan document: {name} is not JSON (relplan writes infinities as strings)")

    try:
        d = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as e:
        raise FormatError(f"not a relplan document: not JSON ({e})") from None
    except RecursionError:
        raise FormatError("not a relplan document: the JSON is nested too deeply") from None
    check_document(d, kind)
    return d  # type: ignore[no-any-return]


def check_document(d: Any, kind: str | None = None) -> int:
    """The format version of document ``d``, checked readable (and of ``kind``)."""
    if not isinstance(d, dict):
        raise FormatError(f"not a relplan document: expected a JSON object, got {_json_kind(d)}")
    if "relplan" not in d:
        raise FormatError("not a relplan document: it has no 'relplan' field (the format version)")
    version = d["relplan"]
    if not _is_int(version) or version < 1:
        raise FormatError(f"not a relplan document: its format version {_short(version)} is not a positive integer")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"written by a newer relplan: format version {version}, this relplan reads up to {FORMAT_VERSION}; "
            "upgrade relplan to read it"
        )
    got = d.get("kind")
    if got not in KINDS:
        raise FormatError(f"not a relplan document: unknown kind {_short(got)}; the kinds are {', '.join(KINDS)}")
    if kind is not None and got != kind:
        raise FormatError(f"expected a {kind} document, got a {got} document")
    return version  # type: ignore[no-any-return]


def _envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"relplan": FORMAT_VERSION, "kind": kind, **body}


# ---- reading fields -------------------------------------------------------------------


def _short(v: Any) -> str:
    try:
        text = repr(v) if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False, default=repr)
    except (RecursionError, ValueError):
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise FormatError(f"{where}: expected an object, got {_json_kind(v)} {_short(v)}")
    return v


def _get(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise FormatError(f"{where}: missing field {key!r}")
    return d[key]


def _bad(where: str, key: str, what: str, v: Any) -> FormatError:
    return FormatError(f"{where}: field {key!r} must be {what}, got {_json_kind(v)} {_short(v)}")


def _str(d: dict[str, Any], key: str, where: str, *, null: bool = False) -> Any:
    v = _get(d, key, where)
    if isinstance(v, str) or (null and v is None):
        return v
    raise _bad(where, key, "a string" + (" or null" if null else ""), v)


def _int(d: dict[str, Any], key: str, where: str, *, null: bool = False) -> Any:
    v = _get(d, key, where)
    if _is_int(v) or (null and v is None):
        return v
    raise _bad(where, key, "an integer" + (" or null" if null else ""), v)


def _bool(d: dict[str, Any], key: str, where: str) -> bool:
    v = _get(d, key, where)
    if isinstance(v, bool):
        return v
    raise _bad(where, key, "true or false", v)


def _list(d: dict[str, Any], key: str, where: str) -> list[Any]:
    v = _get(d, key, where)
    if isinstance(v, list):
        return v
    raise _bad(where, key, "a list", v)


def _strs(d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = _list(d, key, where)
    if all(isinstance(x, str) for x in v):
        return tuple(v)
    raise _bad(where, key, "a list of strings", v)


def _pairs(d: dict[str, Any], key: str, where: str) -> list[tuple[Any, Any]]:
    v = _list(d, key, where)
    for i, p in enumerate(v):
        if not (isinstance(p, list) and len(p) == 2):
            raise FormatError(f"{where}: {key}[{i}] must be a pair [a, b], got {_json_kind(p)} {_short(p)}")
    return [(a, b) for a, b in v]


def _str_pairs(d: dict[str, Any], key: str, where: str) -> tuple[tuple[str, str], ...]:
    out = _pairs(d, key, where)
    for i, (a, b) in enumerate(out):
        if not (isinstance(a, str) and isinstance(b, str)):
            raise FormatError(f"{where}: {key}[{i}] must be a pair of strings, got {_short([a, b])}")
    return tuple(out)


def _num_out(v: Any, what: str = "number") -> Any:
    """A number as JSON: ints stay ints, floats stay floats, infinities become strings."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise FormatError(f"cannot write {what} {v!r}: not a number")
    if isinstance(v, numbers.Integral):
        return int(v)
    f = float(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _num(d: dict[str, Any], key: str, where: str, *, null: bool = False) -> Any:
    return _num_value(_get(d, key, where), where, key, null=null)


def _num_value(v: Any, where: str, key: str, *, null: bool = False) -> Any:
    if (isinstance(v, (int, float)) and not isinstance(v, bool)) or (null and v is None):
        return v
    if isinstance(v, str) and v in _SPECIAL:
        return _SPECIAL[v]
    raise _bad(where, key, "a number" + (" or null" if null else ""), v)


def _built(where: str, make: Callable[[], Any]) -> Any:
    """``make()``, any error it raises on the document's values reported as the entry's."""
    try:
        return make()
    except FormatError:
        raise
    except RelplanError as e:
        raise FormatError(f"{where} is not valid: {e.message}") from None
    except RecursionError:
        raise FormatError(f"{where} is not valid: it is nested too deeply") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, IndexError) as e:
        raise FormatError(f"{where} is not valid: {type(e).__name__}: {e}") from None


# ---- types and schemas ------------------------------------------------------------------

_TYPES = {t.name: t for t in (*T.ALL_TYPES, T.Null)}


def type_to_dict(t: T.DataType) -> str:
    if _TYPES.get(t.name) != t:
        raise FormatError(f"cannot write type {t!r}: not a relplan type")
    return t.name


def type_from_dict(v: Any, where: str) -> T.DataType:
    t = _TYPES.get(v) if isinstance(v, str) else None
    if t is None:
        raise FormatError(f"{where}: unknown type name {_short(v)}; the relplan types are {', '.join(_TYPES)}")
    return t


def schema_to_dict(s: Schema) -> list[list[str]]:
    """``[[name, type], ...]``."""
    return [[f.name, type_to_dict(f.dtype)] for f in s.fields]


def schema_from_dict(v: Any, where: str = "schema") -> Schema:
    if not isinstance(v, list):
        raise FormatError(f"{where}: a schema must be a list of [name, type] pairs, got {_json_kind(v)} {_short(v)}")
    fields = []
    for i, p in enumerate(v):
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)):
            raise FormatError(f"{where}[{i}] must be a [name, type] pair, got {_short(p)}")
        fields.append(Field(p[0], type_from_dict(p[1], f"{where}[{i}]")))
    return _built(where, lambda: Schema(fields))


# ---- expressions ---------------------------------------------------------------------------


# The types a literal of each value_type may have (a literal's type is its value's, or
# given: None of any type, an int as Float64).
_LITERAL_TYPES = {
    "bool": ("Bool",), "int": ("Int64", "Float64"), "float": ("Float64",), "str": ("String",),
    "timestamp": ("Timestamp",), "date": ("Date",),
}


def _literal_value(lit: Literal) -> tuple[str, Any]:
    vt, value = _literal_raw(lit)
    if vt != "null" and lit.dtype.name not in _LITERAL_TYPES[vt]:
        raise FormatError(f"cannot write literal {lit.value!r} typed {lit.dtype}: a {vt} literal is never {lit.dtype}")
    return vt, value


def _literal_raw(lit: Literal) -> tuple[str, Any]:
    v = lit.value
    if v is None:
        return "null", None
    if isinstance(v, bool):
        return "bool", v
    if isinstance(v, numbers.Integral):
        return "int", int(v)
    if isinstance(v, float):
        return "float", _num_out(v)
    if isinstance(v, str):
        return "str", str(v)
    if isinstance(v, dt.datetime):
        u = v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)
        return "timestamp", u.isoformat(timespec="microseconds")
    if isinstance(v, dt.date):
        return "date", v.isoformat()
    raise FormatError(f"cannot write literal {v!r} of type {type(v).__name__}")


def _literal_from(d: dict[str, Any], where: str) -> Literal:
    dtype = type_from_dict(_get(d, "type", where), where)
    vt = _get(d, "value_type", where)
    raw = _get(d, "value", where)
    value: Any
    if vt == "null":
        if raw is not None:
            raise _bad(where, "value", "null (value_type null)", raw)
        value = None
    elif vt == "bool":
        if not isinstance(raw, bool):
            raise _bad(where, "value", "true or false (value_type bool)", raw)
        value = raw
    elif vt == "int":
        if not _is_int(raw):
            raise _bad(where, "value", "an integer (value_type int)", raw)
        value = raw
    elif vt == "float":
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        elif raw in ("inf", "-inf"):
            value = _SPECIAL[raw]
        else:
            raise _bad(where, "value", "a number, 'inf' or '-inf' (value_type float)", raw)
    elif vt == "str":
        if not isinstance(raw, str):
            raise _bad(where, "value", "a string (value_type str)", raw)
        value = raw
    elif vt == "timestamp":
        if not isinstance(raw, str):
            raise _bad(where, "value", "an ISO 8601 timestamp string", raw)
        try:
            value = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise _bad(where, "value", "an ISO 8601 timestamp such as '2024-01-31T12:00:00.000001+00:00'", raw) from None
    elif vt == "date":
        if not isinstance(raw, str):
            raise _bad(where, "value", "an ISO 8601 date string", raw)
        try:
            value = dt.date.fromisoformat(raw)
        except ValueError:
            raise _bad(where, "value", "an ISO 8601 date such as '2024-01-31'", raw) from None
    else:
        raise FormatError(
            f"{where}: unknown literal value_type {_short(vt)}; use null, bool, int, float, str, timestamp or date"
        )
    if vt != "null" and dtype.name not in _LITERAL_TYPES[vt]:
        raise FormatError(f"{where}: a {vt} literal cannot have type {dtype}")
    return _built(f"{where} (Literal)", lambda: Literal(value, dtype))


def expr_to_dict(e: Expr) -> dict[str, Any]:
    """An expression as a JSON object (see the module docstring); iterative over its depth."""
    done: dict[int, dict[str, Any]] = {}
    stack: list[tuple[Expr, bool]] = [(e, False)]
    while stack:
        x, ready = stack.pop()
        if ready:
            done[id(x)] = _expr_entry(x, done)
        elif id(x) not in done:
            stack.append((x, True))
            stack.extend((c, False) for c in x.children())
    return done[id(e)]


def _expr_entry(x: Expr, done: dict[int, dict[str, Any]]) -> dict[str, Any]:
    def sub(c: Expr) -> dict[str, Any]:
        return done[id(c)]

    if isinstance(x, Column):
        return {"kind": "Column", "name": x.name, "type": type_to_dict(x.dtype)}
    if isinstance(x, Literal):
        vt, value = _literal_value(x)
        return {"kind": "Literal", "type": type_to_dict(x.dtype), "value_type": vt, "value": value}
    if isinstance(x, Binary):
        return {"kind": "Binary", "op": x.op, "left": sub(x.left), "right": sub(x.right)}
    if isinstance(x, Unary):
        return {"kind": "Unary", "op": x.op, "operand": sub(x.operand)}
    if isinstance(x, InList):
        return {"kind": "InList", "operand": sub(x.operand), "values": [sub(v) for v in x.values]}
    if isinstance(x, Cast):
        return {"kind": "Cast", "operand": sub(x.operand), "type": type_to_dict(x.dtype)}
    if isinstance(x, Coalesce):
        return {"kind": "Coalesce", "args": [sub(a) for a in x.args]}
    if isinstance(x, Case):
        return {"kind": "Case", "whens": [[sub(c), sub(v)] for c, v in x.whens], "otherwise": sub(x.otherwise)}
    if isinstance(x, PythonUDF):
        return {
            "kind": "PythonUDF", "name": x.name, "function": _storable_function(x), "args": [sub(a) for a in x.args],
            "type": type_to_dict(x.dtype),
        }
    raise FormatError(f"cannot write expression {x!r}: unknown expression kind {type(x).__name__}")


def _storable_function(x: PythonUDF) -> str:
    """The import path a UDF is stored by, checked to lead back to its function."""
    module, _, qualname = x.path.partition(":")
    why = None
    if "<lambda>" in qualname:
        why = "it is a lambda"
    elif "<locals>" in qualname:
        why = "it is defined inside a function"
    elif module == "__main__":
        why = "it is defined in __main__ (a script or notebook), which another process cannot import"
    else:
        try:
            found = _import_function(x.path, "its import path")
        except FormatError as e:
            found, why = None, e.message
        if why is None and found is not x.fn:
            why = f"{x.path} does not lead back to it (redefined, or not bound at the top of its module)"
    if why is not None:
        raise FormatError(
            f"cannot write python_udf {x.name} ({x.path}): {why}; a UDF is stored by its import path "
            "(module:qualname), so define it at the top level of an importable module"
        )
    return x.path


def _import_function(path: str, where: str) -> Any:
    """The function at ``module:qualname`` (the plain function of an @rp.udf), or a FormatError."""
    import importlib

    module, _, qualname = path.partition(":")
    if not module or not qualname:
        raise FormatError(f"{where}: python_udf function {_short(path)} is not an import path module:qualname")
    try:
        obj: Any = importlib.import_module(module)
    except Exception as e:  # ImportError, or the module failing as it is imported
        raise FormatError(f"{where}: cannot import module {module!r} of python_udf function {path!r}: {e}") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FormatError(f"{where}: module {module!r} has no {qualname!r} (python_udf function {path!r})") from None
    from relplan.compiler.udf import UDF

    if isinstance(obj, UDF):
        obj = obj.fn
    if not callable(obj):
        raise FormatError(f"{where}: python_udf function {path!r} is {type(obj).__name__}, not a function")
    return obj


EXPR_KINDS = ("Column", "Literal", "Binary", "Unary", "InList", "Cast", "Coalesce", "Case", "PythonUDF")


def _expr_children(d: dict[str, Any], where: str) -> list[Any]:
    """The sub-expression objects of expression object ``d`` (shape checked)."""
    kind = _get(d, "kind", where)
    if kind in ("Column", "Literal"):
        return []
    if kind == "Binary":
        return [_get(d, "left", where), _get(d, "right", where)]
    if kind in ("Unary", "Cast"):
        return [_get(d, "operand", where)]
    if kind == "InList":
        return [_get(d, "operand", where), *_list(d, "values", where)]
    if kind in ("Coalesce", "PythonUDF"):
        return _list(d, "args", where)
    if kind == "Case":
        whens = _pairs(d, "whens", where)
        return [x for pair in whens for x in pair] + [_get(d, "otherwise", where)]
    raise FormatError(f"{where}: unknown expression kind {_short(kind)}; the kinds are {', '.join(EXPR_KINDS)}")


def _expr_build(d: dict[str, Any], kids: list[Expr], where: str) -> Expr:
    kind = d["kind"]
    if kind == "Column":
        name = _str(d, "name", where)
        dtype = type_from_dict(_get(d, "type", where), where)
        return Column(name, dtype)
    if kind == "Literal":
        return _literal_from(d, where)
    if kind in ("Binary", "Unary"):
        op = _str(d, "op", where)
        return _built(f"{where} ({kind})", lambda: Binary(op, *kids) if kind == "Binary" else Unary(op, kids[0]))
    if kind == "InList":
        if not all(isinstance(v, Literal) for v in kids[1:]):
            raise FormatError(f"{where}: the values of an InList must be Literals")
        return _built(f"{where} (InList)", lambda: InList(kids[0], tuple(kids[1:])))  # type: ignore[arg-type]
    if kind == "Cast":
        dtype = type_from_dict(_get(d, "type", where), where)
        return _built(f"{where} (Cast)", lambda: Cast(kids[0], dtype))
    if kind == "Coalesce":
        return _built(f"{where} (Coalesce)", lambda: Coalesce(tuple(kids)))
    if kind == "PythonUDF":
        name, path = _str(d, "name", where), _str(d, "function", where)
        dtype = type_from_dict(_get(d, "type", where), where)
        fn = _import_function(path, f"{where} (python_udf {name})")
        return _built(f"{where} (PythonUDF)", lambda: PythonUDF(name, fn, tuple(kids), dtype))
    pairs = tuple((kids[i], kids[i + 1]) for i in range(0, len(kids) - 1, 2))
    return _built(f"{where} (Case)", lambda: Case(pairs, kids[-1]))


def expr_from_dict(d: Any, where: str = "expression") -> Expr:
    """The expression of object ``d``; iterative, so a deeply nested document is an error, not a crash."""
    values: list[Expr] = []
    stack: list[tuple[Any, int]] = [(d, -1)]  # (object, number of its children, once expanded)
    while stack:
        obj, n = stack.pop()
        if n < 0:
            obj = _obj(obj, where)
            kids = _expr_children(obj, where)
            stack.append((obj, len(kids)))
            stack.extend((k, -1) for k in reversed(kids))
        else:
            kids_built = values[len(values) - n:] if n else []
            if n:
                del values[len(values) - n:]
            values.append(_expr_build(obj, kids_built, where))
    return values[0]


def _opt_expr(e: Expr | None) -> dict[str, Any] | None:
    return None if e is None else expr_to_dict(e)


def _opt_expr_from(d: dict[str, Any], key: str, where: str) -> Expr | None:
    v = _get(d, key, where)
    return None if v is None else expr_from_dict(v, f"{where} {key}")


# ---- aggregates and windows -------------------------------------------------------------


def aggcall_to_dict(a: AggCall) -> dict[str, Any]:
    return {
        "func": a.func, "arg": _opt_expr(a.arg), "name": a.name, "filter": _opt_expr(a.filter), "order": _opt_expr(a.order),
    }


def aggcall_from_dict(d: Any, where: str = "aggregate") -> AggCall:
    d = _obj(d, where)
    func = _str(d, "func", where)
    name = _str(d, "name", where)
    where = f"{where} {name!r}"
    arg = _opt_expr_from(d, "arg", where)
    filt = _opt_expr_from(d, "filter", where)
    order = _opt_expr_from(d, "order", where)
    if order is not None and not isinstance(order, Column):
        raise FormatError(f"{where}: field 'order' must be a Column expression, got a {type(order).__name__}")
    return _built(where, lambda: AggCall(func, arg, name, filt, order))  # type: ignore[arg-type]


def _aggs_from(d: dict[str, Any], key: str, where: str) -> tuple[AggCall, ...]:
    return tuple(aggcall_from_dict(a, f"{where} {key}[{i}]") for i, a in enumerate(_list(d, key, where)))


def frame_to_dict(f: Frame) -> dict[str, Any]:
    return {
        "lower": f.lower, "lower_inclusive": f.lower_inclusive, "upper": f.upper,
        "upper_inclusive": f.upper_inclusive, "tile": f.tile,
    }


def frame_from_dict(d: Any, where: str = "frame") -> Frame:
    d = _obj(d, where)
    lower, upper = _int(d, "lower", where, null=True), _int(d, "upper", where)
    lo_inc, up_inc = _bool(d, "lower_inclusive", where), _bool(d, "upper_inclusive", where)
    tile = _int(d, "tile", where, null=True)
    return _built(where, lambda: Frame(lower, lo_inc, upper, up_inc, tile))


def time_window_to_dict(w: TimeWindow) -> dict[str, Any]:
    return {"size": w.size, "slide": w.slide}


def time_window_from_dict(d: Any, where: str = "window") -> TimeWindow:
    d = _obj(d, where)
    size, slide = _int(d, "size", where), _int(d, "slide", where)
    return _built(where, lambda: TimeWindow(size, slide))


def _windows_to(windows: tuple[tuple[Frame, tuple[AggCall, ...]], ...]) -> list[dict[str, Any]]:
    return [{"frame": frame_to_dict(f), "aggs": [aggcall_to_dict(a) for a in aggs]} for f, aggs in windows]


def _windows_from(d: dict[str, Any], where: str) -> tuple[tuple[Frame, tuple[AggCall, ...]], ...]:
    out = []
    for i, w in enumerate(_list(d, "windows", where)):
        at = f"{where} windows[{i}]"
        w = _obj(w, at)
        out.append((frame_from_dict(_get(w, "frame", at), f"{at} frame"), _aggs_from(w, "aggs", at)))
    return tuple(out)


# ---- nodes -------------------------------------------------------------------------------

NODE_KINDS = (
    "Source", "Filter", "Project", "Aggregate", "WindowAggregate", "TimeWindowAggregate", "Join", "Union", "AsOfJoin",
    "Sink",
)


def _source_fields(s: N.Source) -> dict[str, Any]:
    return {
        "name": s.name, "columns": schema_to_dict(s.columns), "event_time": s.event_time, "lateness": s.lateness,
        "bounded": s.bounded, "keys": list(s.keys),
    }


def _source_node_from(d: dict[str, Any], where: str) -> N.Source:
    name = _str(d, "name", where)
    columns = schema_from_dict(_get(d, "columns", where), f"{where} columns")
    event_time = _str(d, "event_time", where, null=True)
    lateness = _int(d, "lateness", where)
    bounded = _bool(d, "bounded", where)
    keys = _strs(d, "keys", where)
    return _built(where, lambda: N.Source(name, columns, event_time, lateness, bounded, keys))


class _NodeTable:
    """Nodes numbered in topological order, each distinct node once."""

    def __init__(self) -> None:
        self.ids: dict[N.Node, int] = {}
        self.entries: list[dict[str, Any]] = []

    def add(self, root: N.Node) -> int:
        """The id of ``root``, adding it and every input it needs (iteratively)."""
        ids = self.ids
        got = ids.get(root)
        if got is not None:
            return got
        stack: list[tuple[N.Node, bool]] = [(root, False)]
        while stack:
            n, expanded = stack.pop()
            if n in ids:
                continue
            if expanded:
                ids[n] = len(self.entries)
                self.entries.append(self._entry(n))
                continue
            stack.append((n, True))
            for child in reversed(n.inputs):
                if child not in ids:
                    stack.append((child, False))
        return ids[root]

    def _entry(self, n: N.Node) -> dict[str, Any]:
        ref = self.ids.__getitem__
        out: dict[str, Any] = {"id": len(self.entries), "kind": n.kind}
        if isinstance(n, N.Source):
            out.update(_source_fields(n))
        elif isinstance(n, N.Filter):
            out.update(input=ref(n.input), predicate=expr_to_dict(n.predicate))
        elif isinstance(n, N.Project):
            out.update(input=ref(n.input), exprs=[[name, expr_to_dict(e)] for name, e in n.exprs])
        elif isinstance(n, N.Aggregate):
            out.update(input=ref(n.input), keys=list(n.keys), aggs=[aggcall_to_dict(a) for a in n.aggs])
        elif isinstance(n, N.WindowAggregate):
            out.update(input=ref(n.input), keys=list(n.keys), order=n.order, windows=_windows_to(n.windows))
        elif isinstance(n, N.TimeWindowAggregate):
            out.update(
                input=ref(n.input), keys=list(n.keys), time=n.time, window=time_window_to_dict(n.window),
                aggs=[aggcall_to_dict(a) for a in n.aggs],
            )
        elif isinstance(n, N.Join):
            out.update(left=ref(n.left), right=ref(n.right), how=n.how, on=[list(p) for p in n.on])
            # Written only when set: a plain join's entry (and every fingerprint over it)
            # stays what it was before joins had interval bounds and lookups.
            if n.left_time is not None:
                out.update(left_time=n.left_time, right_time=n.right_time, before=n.before, after=n.after)
            if n.lookup:
                out.update(lookup=True)
        elif isinstance(n, N.Union):
            out.update(members=[ref(m) for m in n.members])
        elif isinstance(n, N.AsOfJoin):
            out.update(
                spine=ref(n.spine), events=ref(n.events), on=[list(p) for p in n.on], spine_time=n.spine_time,
                event_time=n.event_time, windows=_windows_to(n.windows), row_id=n.row_id, lowering=n.lowering,
                tile=n.tile, estimates=[[k, _num_out(v, "estimate")] for k, v in n.estimates],
                unique_times=n.unique_times,
            )
            if n.no_nulls:  # written only when set: entries from before the field read back unchanged
                out.update(no_nulls=True)
        elif isinstance(n, N.Sink):
            out.update(input=ref(n.input), name=n.name)
        else:
            raise FormatError(f"cannot write plan node {n.kind} ({type(n).__name__}): unknown node kind")
        return out


def _nodes_from(entries: Any, where: str = "nodes") -> list[N.Node]:
    if not isinstance(entries, list):
        raise FormatError(f"{where} must be a list of node entries, got {_json_kind(entries)} {_short(entries)}")
    built: list[N.Node] = []

    for i, d in enumerate(entries):
        at = f"{where}[{i}]"
        d = _obj(d, at)
        kind = _get(d, "kind", at)
        if kind not in NODE_KINDS:
            raise FormatError(f"{at}: unknown node kind {_short(kind)}; the kinds are {', '.join(NODE_KINDS)}")
        at = f"{at} ({kind})"
        nid = _int(d, "id", at)
        if nid != i:
            raise FormatError(f"{at}: its id is {nid}, but a node's id is its position in the list ({i})")

        def ref(key: str, v: Any = None, *, at: str = at, d: dict[str, Any] = d) -> N.Node:
            v = _get(d, key, at) if v is None else v
            if not _is_int(v):
                raise _bad(at, key, "a node id (an integer)", v)
            if not 0 <= v < len(built):
                raise FormatError(
                    f"{at}: field {key!r} refers to node {v}, which is no earlier entry (a dangling node id; "
                    f"inputs come before their users, ids 0 to {len(built) - 1} here)"
                )
            return built[v]

        node: N.Node
        if kind == "Source":
            node = _source_node_from(d, at)
        elif kind == "Filter":
            inp = ref("input")
            pred = expr_from_dict(_get(d, "predicate", at), f"{at} predicate")
            node = _built(at, lambda: N.Filter(inp, pred))
        elif kind == "Project":
            inp = ref("input")
            exprs = []
            for j, (name, e) in enumerate(_pairs(d, "exprs", at)):
                if not isinstance(name, str):
                    raise FormatError(f"{at}: exprs[{j}] must name its column with a string, got {_short(name)}")
                exprs.append((name, expr_from_dict(e, f"{at} exprs[{j}]")))
            node = _built(at, lambda: N.Project(inp, tuple(exprs)))
        elif kind == "Aggregate":
            inp, keys, aggs = ref("input"), _strs(d, "keys", at), _aggs_from(d, "aggs", at)
            node = _built(at, lambda: N.Aggregate(inp, keys, aggs))
        elif kind == "WindowAggregate":
            inp, keys, order = ref("input"), _strs(d, "keys", at), _str(d, "order", at)
            windows = _windows_from(d, at)
            node = _built(at, lambda: N.WindowAggregate(inp, keys, order, windows))
        elif kind == "TimeWindowAggregate":
            inp, keys, time = ref("input"), _strs(d, "keys", at), _str(d, "time", at)
            window = time_window_from_dict(_get(d, "window", at), f"{at} window")
            aggs = _aggs_from(d, "aggs", at)
            node = _built(at, lambda: N.TimeWindowAggregate(inp, keys, time, window, aggs))
        elif kind == "Join":
            left, right, how, on = ref("left"), ref("right"), _str(d, "how", at), _str_pairs(d, "on", at)
            interval = any(k in d for k in ("left_time", "right_time", "before", "after"))
            left_time = _str(d, "left_time", at) if interval else None
            right_time = _str(d, "right_time", at) if interval else None
            before = _int(d, "before", at) if interval else 0
            after = _int(d, "after", at) if interval else 0
            lookup = _bool(d, "lookup", at) if "lookup" in d else False
            node = _built(at, lambda: N.Join(left, right, how, on, left_time, right_time, before, after, lookup))
        elif kind == "Union":
            members = tuple(ref(f"members[{j}]", m) for j, m in enumerate(_list(d, "members", at)))
            node = _built(at, lambda: N.Union(members))
        elif kind == "AsOfJoin":
            spine, events, on = ref("spine"), ref("events"), _str_pairs(d, "on", at)
            spine_time, event_time = _str(d, "spine_time", at), _str(d, "event_time", at)
            windows = _windows_from(d, at)
            row_id, lowering = _str(d, "row_id", at, null=True), _str(d, "lowering", at, null=True)
            tile = _int(d, "tile", at, null=True)
            estimates = []
            for j, (k, v) in enumerate(_pairs(d, "estimates", at)):
                if not isinstance(k, str):
                    raise FormatError(f"{at}: estimates[{j}] must name a lowering with a string, got {_short(k)}")
                estimates.append((k, _num_value(v, at, f"estimates[{j}][1]")))
            unique = _bool(d, "unique_times", at)
            no_nulls = _bool(d, "no_nulls", at) if "no_nulls" in d else False
            node = _built(at, lambda: N.AsOfJoin(
                spine, events, on, spine_time, event_time, windows, row_id, lowering, tile, tuple(estimates), unique,
                no_nulls,
            ))
        else:  # Sink
            inp, name = ref("input"), _str(d, "name", at)
            node = _built(at, lambda: N.Sink(inp, name))
        built.append(node)
    return built


def _ids_from(d: dict[str, Any], key: str, where: str, built: list[N.Node]) -> list[N.Node]:
    out = []
    for j, v in enumerate(_list(d, key, where)):
        if not _is_int(v) or not 0 <= v < len(built):
            raise FormatError(
                f"{where}: {key}[{j}] refers to node {_short(v)}, which is not in 'nodes' (a dangling node id)"
            )
        out.append(built[v])
    return out


def nodes_to_dict(roots: N.Node | Iterable[N.Node]) -> dict[str, Any]:
    """A ``nodes`` document: every node reachable from ``roots`` and the roots' ids."""
    roots = (roots,) if isinstance(roots, N.Node) else tuple(roots)
    table = _NodeTable()
    ids = [table.add(r) for r in roots]
    return _envelope("nodes", {"nodes": table.entries, "roots": ids})


def nodes_from_dict(d: Any) -> tuple[N.Node, ...]:
    check_document(d, "nodes")
    built = _nodes_from(_get(d, "nodes", "nodes document"))
    return tuple(_ids_from(d, "roots", "nodes document", built))


def node_to_dict(node: N.Node) -> dict[str, Any]:
    """One plan (sub)tree as a ``nodes`` document with one root."""
    return nodes_to_dict((node,))


def node_from_dict(d: Any) -> N.Node:
    roots = nodes_from_dict(d)
    if len(roots) != 1:
        raise FormatError(f"expected a nodes document with one root, got {len(roots)}")
    return roots[0]


# ---- sources (the DSL classes) --------------------------------------------------------------


# Source classes by their document (canonical JSON): a source read twice is one class, and a
# class written here is the class read back. Weak: a class nobody holds is forgotten.
_SOURCE_CLASSES: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()


def _source_class_fields(cls: Any) -> dict[str, Any]:
    from relplan.compiler.source import Source

    if not (isinstance(cls, type) and issubclass(cls, Source)) or not hasattr(cls, "__relplan_source__"):
        raise FormatError(f"cannot write {cls!r} as a source: expected a class declared as a subclass of rp.Source")
    return {"class_name": cls.__name__, **_source_fields(cls.node())}


def source_to_dict(cls: type[Source]) -> dict[str, Any]:
    """A ``source`` document of a declared source class (``class Tx(rp.Source): ...``)."""
    fields = _source_class_fields(cls)
    _SOURCE_CLASSES.setdefault(canonical_json(fields), cls)
    return _envelope("source", fields)


def source_from_dict(d: Any) -> type[Source]:
    """The source class of a ``source`` document: the same class for the same document."""
    check_document(d, "source")
    return _source_class_from(d, "source document")


_DUNDER = re.compile(r"^__.*__$")


def _source_class_from(d: Any, where: str) -> type[Source]:
    from relplan.compiler.source import Source, _EventTime, _Key

    d = _obj(d, where)
    # A document as written is its own canonical key: known ones skip rebuilding the node
    # (half of reading a feature back, where each feature carries its source).
    raw = canonical_json(d)
    cls = _SOURCE_CLASSES.get(raw)
    if cls is not None:
        return cls  # type: ignore[return-value]
    class_name = _str(d, "class_name", where)
    node = _source_node_from(d, where)
    fields = {"class_name": class_name, **_source_fields(node)}
    key = canonical_json(fields)
    cls = _SOURCE_CLASSES.get(key)
    if cls is not None:
        return cls  # type: ignore[return-value]
    ns: dict[str, Any] = {"__annotations__": {f.name: f.dtype for f in node.columns}, "__qualname__": class_name}
    markers: dict[str, Any] = {k: _Key() for k in node.keys}
    if node.event_time is not None:
        markers[node.event_time] = _EventTime(node.lateness)
    bad = sorted(m for m in markers if _DUNDER.match(m))
    if bad:
        raise FormatError(f"{where}: cannot declare a source class with the key or event-time column {bad[0]!r}")
    ns.update(markers)
    new = _built(where, lambda: type(class_name, (Source,), ns, name=node.name, bounded=node.bounded))
    for m in markers:  # read once, when the class was made; they would hide rp.Source's methods
        delattr(new, m)
    if new.node() != node:
        raise FormatError(f"{where}: the source class rebuilt declares {new.node().details()}, not {node.details()}")
    return _SOURCE_CLASSES.setdefault(key, new)  # type: ignore[return-value]


# ---- features -----------------------------------------------------------------------------

WINDOW_KINDS = ("sliding", "lifetime", "tumbling", "hopping")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _feature_fields(f: Feature) -> dict[str, Any]:
    b = f.body
    return {
        "name": f.name,
        "transformation": f.transformation,
        "defined_at": f.defined_at,
        "called_at": f.called_at,
        "description": f.description,
        "owner": f.owner,
        "tags": list(f.tags),
        "body": {
            "source": _source_class_fields(b.source),
            "keys": [[k, expr_to_dict(e)] for k, e in b.keys],
            "spec": spec_to_dict(b.spec),
            "mask": _opt_expr(b.mask),
            "aggs": [[suffix, aggcall_to_dict(a)] for suffix, a in b.aggs],
            "location": b.location,
            # The merged relation (joins over the source), written only when the feature has one.
            **({} if b.rows is None else {"rows": _subplan_to(b.rows)}),
        },
    }


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """A window spec as ``{kind, size, slide}``, with ``closed`` only where it is not the
    default "right" (so every feature written before it has the same document)."""
    d: dict[str, Any] = {"kind": spec.kind, "size": spec.size, "slide": spec.slide}
    if spec.closed != "right":
        d["closed"] = spec.closed
    return d


def _subplan_to(root: N.Node) -> dict[str, Any]:
    table = _NodeTable()
    rid = table.add(root)
    return {"nodes": table.entries, "root": rid}


def _subplan_from(d: Any, where: str) -> N.Node:
    d = _obj(d, where)
    built = _nodes_from(_get(d, "nodes", where), f"{where} nodes")
    rid = _get(d, "root", where)
    if not _is_int(rid) or not 0 <= rid < len(built):
        raise FormatError(f"{where}: root refers to node {_short(rid)}, which is not in its 'nodes' (a dangling node id)")
    return built[rid]


def feature_to_dict(f: Feature) -> dict[str, Any]:
    """A ``feature`` document: what it computes (``body``), its name, metadata and locations."""
    from relplan.compiler.transformation import Feature

    if not isinstance(f, Feature):
        raise FormatError(f"cannot write {f!r} as a feature: expected an rp.Feature")
    fields = _feature_fields(f)
    _SOURCE_CLASSES.setdefault(canonical_json(fields["body"]["source"]), f.body.source)
    return _envelope("feature", fields)


def feature_from_dict(d: Any) -> Feature:
    check_document(d, "feature")
    return _feature_from(d, "feature document")


def _spec_from(d: Any, where: str) -> Any:
    from relplan.compiler.windowspec import CLOSED, WindowSpec

    d = _obj(d, where)
    kind = _str(d, "kind", where)
    size, slide = _int(d, "size", where, null=True), _int(d, "slide", where, null=True)
    ok = {
        "sliding": size is not None and size > 0 and slide is None,
        "lifetime": size is None and slide is None,
        "tumbling": size is not None and size > 0 and slide == size,
        "hopping": size is not None and slide is not None,
    }
    if kind not in ok:
        raise FormatError(f"{where}: unknown window kind {kind!r}; the kinds are {', '.join(WINDOW_KINDS)}")
    if not ok[kind]:
        raise FormatError(f"{where}: a {kind} window cannot have size {size} and slide {slide}")
    if kind == "hopping":
        _built(where, lambda: TimeWindow(size, slide))
    closed = _str(d, "closed", where) if "closed" in d else "right"
    if closed not in CLOSED or (closed != "right" and kind != "sliding"):
        raise FormatError(f"{where}: a {kind} window cannot be closed={closed!r}; sliding windows are closed 'right' or 'both'")
    return WindowSpec(kind, size, slide, closed)


def _feature_from(d: Any, where: str) -> Feature:
    from relplan.compiler.dsl import FeatureBody
    from relplan.compiler.transformation import Feature

    d = _obj(d, where)
    name = _str(d, "name", where)
    if not _NAME.match(name):
        raise FormatError(f"{where}: feature name {name!r} must be an identifier (letters, digits, _)")
    where = f"{where} (feature {name!r})"
    transformation = _str(d, "transformation", where)
    defined_at, called_at = _str(d, "defined_at", where, null=True), _str(d, "called_at", where, null=True)
    description, owner = _str(d, "description", where, null=True), _str(d, "owner", where, null=True)
    tags = _strs(d, "tags", where)
    body_at = f"{where} body"
    b = _obj(_get(d, "body", where), body_at)
    source = _source_class_from(_get(b, "source", body_at), f"{body_at} source")
    rows = _subplan_from(b["rows"], f"{body_at} rows") if "rows" in b else None
    schema = source.node().columns if rows is None else rows.schema
    keys = []
    for j, (k, e) in enumerate(_pairs(b, "keys", body_at)):
        if not isinstance(k, str):
            raise FormatError(f"{body_at}: keys[{j}] must name its key with a string, got {_short(k)}")
        keys.append((k, expr_from_dict(e, f"{body_at} keys[{j}]")))
    spec = _spec_from(_get(b, "spec", body_at), f"{body_at} spec")
    mask = _opt_expr_from(b, "mask", body_at)
    aggs = []
    for j, (suffix, call) in enumerate(_pairs(b, "aggs", body_at)):
        if suffix is not None and not isinstance(suffix, str):
            raise FormatError(f"{body_at}: aggs[{j}] must have a string or null suffix, got {_short(suffix)}")
        aggs.append((suffix, aggcall_from_dict(call, f"{body_at} aggs[{j}]")))
    if not aggs:
        raise FormatError(f"{body_at}: a feature needs at least one aggregate")
    location = _str(b, "location", body_at, null=True)
    exprs = [("keys", e) for _, e in keys] + ([("mask", mask)] if mask is not None else [])
    exprs += [(f"aggregate {a.name!r}", e) for _, a in aggs for e in a.expressions()]
    for what, e in exprs:
        _built(f"{body_at} {what}", lambda e=e: check_bound(e, schema, context=f"(source {source.source_name})"))
    if mask is not None and mask.dtype != T.Bool:
        raise FormatError(f"{body_at}: the mask {mask.sql()} is {mask.dtype}, not Bool")
    body = FeatureBody(source, tuple(keys), spec, mask, tuple(aggs), location, rows)
    return Feature(name, transformation, body, defined_at, called_at, description, owner, tags)


# ---- placement -------------------------------------------------------------------------------


def _knobs_to(k: Any) -> dict[str, Any]:
    return {
        "priority": k.priority, "max_staleness": k.max_staleness, "max_missed": _num_out(k.max_missed),
        "max_cost": _num_out(k.max_cost), "max_state": _num_out(k.max_state), "placement": k.placement,
        "schedule": k.schedule, "allowed_lateness": k.allowed_lateness, "tile": k.tile,
        "batch_engine": k.batch_engine, "state_cost": _num_out(k.state_cost),
        "features": [[name, _knobs_to(own)] for name, own in k.features],
    }


def _knobs_from(d: Any, where: str) -> Any:
    from relplan.rules.placement import Knobs

    d = _obj(d, where)
    kw: dict[str, Any] = {
        "priority": _str(d, "priority", where), "placement": _str(d, "placement", where, null=True),
        "batch_engine": _str(d, "batch_engine", where),
    }
    for key in ("max_staleness", "schedule", "allowed_lateness", "tile"):
        kw[key] = _int(d, key, where, null=True)
    for key in ("max_missed", "max_cost", "max_state"):
        kw[key] = _num(d, key, where, null=True)
    kw["state_cost"] = _num(d, "state_cost", where)
    own = []
    for j, (name, k) in enumerate(_pairs(d, "features", where)):
        if not isinstance(name, str):
            raise FormatError(f"{where}: features[{j}] must name a feature with a string, got {_short(name)}")
        own.append((name, _knobs_from(k, f"{where} features[{j}]")))
    kw["features"] = tuple(own)
    return _built(where, lambda: Knobs(**kw))


def _alternative_to(a: Any) -> dict[str, Any]:
    return {
        "name": a.name, "engine": a.engine, "settings": [[k, v] for k, v in a.settings],
        "compute": _num_out(a.compute), "state": _num_out(a.state), "cost": _num_out(a.cost),
        "latency": _num_out(a.latency), "missed": _num_out(a.missed), "refused": a.refused,
        "violates": list(a.violates), "notes": list(a.notes),
    }


def _alternative_from(d: Any, where: str) -> Any:
    from relplan.rules.placement import Alternative

    d = _obj(d, where)
    settings = []
    for j, (k, v) in enumerate(_pairs(d, "settings", where)):
        if not (isinstance(k, str) and _is_int(v)):
            raise FormatError(f"{where}: settings[{j}] must be [name, microseconds], got {_short([k, v])}")
        settings.append((k, v))
    nums = {key: _num(d, key, where, null=True) for key in ("compute", "state", "cost", "latency", "missed")}
    return _built(where, lambda: Alternative(
        _str(d, "name", where), _str(d, "engine", where), tuple(settings), **nums,
        refused=_str(d, "refused", where, null=True), violates=_strs(d, "violates", where), notes=_strs(d, "notes", where),
    ))


def _stats_to(s: Any) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "sources": [
            [name, {
                "rows": st.rows, "distinct": [[c, n] for c, n in st.distinct], "spans": [[c, n] for c, n in st.spans],
                "unique": [list(u) for u in st.unique], "rate": _num_out(st.rate),
                "lateness": [[_num_out(q), us] for q, us in st.lateness],
            }]
            for name, st in s.sources
        ],
    }


def _stats_from(v: Any, where: str) -> Any:
    from relplan.rules.statistics import SourceStats, Statistics

    if v is None:
        return None
    d = _obj(v, where)
    out = []
    for j, (name, s) in enumerate(_pairs(d, "sources", where)):
        at = f"{where} sources[{j}]"
        if not isinstance(name, str):
            raise FormatError(f"{at}: must name a source with a string, got {_short(name)}")
        s = _obj(s, at)
        unique = _list(s, "unique", at)
        if not all(isinstance(u, list) and all(isinstance(c, str) for c in u) for u in unique):
            raise _bad(at, "unique", "a list of lists of column names", unique)
        counts = {}
        for key in ("distinct", "spans"):
            pairs = _pairs(s, key, at)
            if not all(isinstance(c, str) and _is_int(n) for c, n in pairs):
                raise _bad(at, key, "a list of [column, integer] pairs", s[key])
            counts[key] = tuple(pairs)
        lateness = []
        for k, (q, us) in enumerate(_pairs(s, "lateness", at)):
            if not _is_int(us):
                raise _bad(at, f"lateness[{k}][1]", "an integer (microseconds)", us)
            lateness.append((_num_value(q, at, f"lateness[{k}][0]"), us))
        rows, rate = _int(s, "rows", at), _num(s, "rate", at, null=True)
        out.append((name, _built(at, lambda: SourceStats(
            rows, counts["distinct"], counts["spans"], tuple(tuple(u) for u in unique), rate, tuple(lateness)
        ))))
    return _built(where, lambda: Statistics(tuple(out)))


def _config_to(c: Any) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "disabled": sorted(c.disabled), "max_passes": c.max_passes, "statistics": _stats_to(c.statistics),
        "tile_min_rows_per_frame": c.tile_min_rows_per_frame, "asof_lowering": c.asof_lowering,
    }


def _config_from(v: Any, where: str) -> Any:
    from relplan.rules.driver import OptimizerConfig

    if v is None:
        return None
    d = _obj(v, where)
    disabled = frozenset(_strs(d, "disabled", where))
    max_passes, tile_rows = _int(d, "max_passes", where), _int(d, "tile_min_rows_per_frame", where)
    stats = _stats_from(_get(d, "statistics", where), f"{where} statistics")
    lowering = _str(d, "asof_lowering", where, null=True)
    return _built(where, lambda: OptimizerConfig(disabled, max_passes, stats, tile_rows, lowering))


def placement_to_dict(p: Placement) -> dict[str, Any]:
    features = []
    for fp in p.features:
        chosen = next((i for i, a in enumerate(fp.alternatives) if a is fp.chosen), None)
        if chosen is None:
            chosen = next((i for i, a in enumerate(fp.alternatives) if a == fp.chosen), None)
        if chosen is None:
            raise FormatError(f"cannot write the placement of {fp.feature!r}: its choice is none of its alternatives")
        features.append({
            "feature": fp.feature, "columns": list(fp.columns), "alternatives": [_alternative_to(a) for a in fp.alternatives],
            "chosen": chosen, "decided_by": fp.decided_by, "knobs": None if fp.knobs is None else _knobs_to(fp.knobs),
        })
    return {"knobs": _knobs_to(p.knobs), "features": features, "config": _config_to(p.config), "by_output": p.by_output}


def placement_from_dict(d: Any, where: str = "placement") -> Placement:
    from relplan.rules.placement import FeaturePlacement, Placement

    d = _obj(d, where)
    knobs = _knobs_from(_get(d, "knobs", where), f"{where} knobs")
    features = []
    for j, f in enumerate(_list(d, "features", where)):
        at = f"{where} features[{j}]"
        f = _obj(f, at)
        alts = tuple(_alternative_from(a, f"{at} alternatives[{k}]") for k, a in enumerate(_list(f, "alternatives", at)))
        chosen = _int(f, "chosen", at)
        if not 0 <= chosen < len(alts):
            raise FormatError(f"{at}: field 'chosen' is {chosen}, not the index of one of its {len(alts)} alternatives")
        own = _get(f, "knobs", at)
        fp = FeaturePlacement(
            _str(f, "feature", at), _strs(f, "columns", at), alts, alts[chosen], _str(f, "decided_by", at),
            None if own is None else _knobs_from(own, f"{at} knobs"),
        )
        features.append(fp)
    config = _config_from(_get(d, "config", where), f"{where} config")
    return Placement(knobs, tuple(features), config, _bool(d, "by_output", where))


# ---- derived features -----------------------------------------------------------------------


def derived_to_dict(d: Any) -> dict[str, Any]:
    """A ``derived`` document of an ``rp.derived(...)`` feature: its expression, its inputs
    (written whole), its request fields, name and metadata."""
    from relplan.compiler.derived import DerivedFeature

    if not isinstance(d, DerivedFeature):
        raise FormatError(f"cannot write {d!r} as a derived feature: expected an rp.derived(...) feature")
    # Inputs are inline feature documents rather than references by name: a name
    # resolves to whatever version is current when read, so a derived version would
    # silently follow its inputs' later changes; written whole, the document pins the
    # values it computes (as a catalog version must), reads back with no catalog, and
    # the catalog still finds its inputs by name for lineage and downstream changes.
    inputs = []
    for f in d.inputs:
        fields = _feature_fields(f)
        _SOURCE_CLASSES.setdefault(canonical_json(fields["body"]["source"]), f.body.source)
        inputs.append(fields)
    return _envelope("derived", {
        "name": d.name,
        "expr": expr_to_dict(d.expr),
        "inputs": inputs,
        "request": [[r.request, r.name, type_to_dict(r.dtype)] for r in d.request],
        "defined_at": d.defined_at,
        "description": d.description,
        "owner": d.owner,
        "tags": list(d.tags),
    })


def derived_from_dict(d: Any) -> Any:
    """The ``DerivedFeature`` of a ``derived`` document: it compiles to the same plan."""
    check_document(d, "derived")
    return _derived_from(d, "derived document")


def _derived_from(d: Any, where: str) -> Any:
    from relplan.compiler.derived import DerivedFeature, RequestField

    d = _obj(d, where)
    name = _str(d, "name", where)
    if not _NAME.match(name):
        raise FormatError(f"{where}: derived feature name {name!r} must be an identifier (letters, digits, _)")
    where = f"{where} (derived feature {name!r})"
    inputs = tuple(_feature_from(f, f"{where} inputs[{j}]") for j, f in enumerate(_list(d, "inputs", where)))
    request = []
    for j, r in enumerate(_list(d, "request", where)):
        if not (isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and isinstance(r[1], str)):
            raise FormatError(f"{where}: request[{j}] must be [request name, field, type], got {_short(r)}")
        request.append(RequestField(r[0], r[1], type_from_dict(r[2], f"{where} request[{j}]")))
    if not inputs and not request:
        raise FormatError(f"{where}: a derived feature reads at least one feature or request field")
    # The values it may read, each once: its inputs' output columns and its request fields.
    readable: dict[str, T.DataType] = {}
    values = [(f"feature {f.name}", c, call.dtype) for f in inputs for c, (_, call) in zip(f.columns, f.body.aggs)]
    values += [(f"request field {r.request}.{r.name}", r.name, r.dtype) for r in request]
    for what, col, dtype in values:
        if col in readable:
            raise FormatError(f"{where}: two values it reads are named {col!r} (one is {what})")
        readable[col] = dtype
    if name in readable:
        raise FormatError(f"{where}: it has the name of a value it reads")
    expr = expr_from_dict(_get(d, "expr", where), f"{where} expr")
    schema = Schema.of(readable.items())
    _built(f"{where} expr", lambda: check_bound(expr, schema, context="(its inputs' columns and request fields)"))
    defined_at = _str(d, "defined_at", where, null=True)
    description, owner = _str(d, "description", where, null=True), _str(d, "owner", where, null=True)
    tags = _strs(d, "tags", where)
    return DerivedFeature(name, expr, inputs, tuple(request), defined_at, description, owner, tags)


# ---- plans ---------------------------------------------------------------------------------


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """A ``plan`` document: its nodes, outputs, features, trace and placement."""
    from relplan.compiler.plan import Plan

    if not isinstance(plan, Plan):
        raise FormatError(f"cannot write {type(plan).__name__} as a plan: expected an rp.Plan")
    table = _NodeTable()
    outputs = [table.add(s) for s in plan.outputs]
    trace = [
        {
            "pass": t.pass_no, "rule": t.rule,
            "removed": [table.add(n) for n in t.removed_nodes], "added": [table.add(n) for n in t.added_nodes],
        }
        for t in plan.trace
    ]
    features = []
    for f in plan.features:
        fields = _feature_fields(f)
        _SOURCE_CLASSES.setdefault(canonical_json(fields["body"]["source"]), f.body.source)
        features.append(fields)
    return _envelope("plan", {
        "nodes": table.entries,
        "outputs": outputs,
        "features": features,
        "optimized": plan.optimized,
        "trace": trace,
        "placement": None if plan.placement is None else placement_to_dict(plan.placement),
    })


def plan_from_dict(d: Any) -> Plan:
    from relplan.compiler.plan import Plan
    from relplan.rules.driver import TraceEntry

    check_document(d, "plan")
    where = "plan document"
    built = _nodes_from(_get(d, "nodes", where))
    outputs = _ids_from(d, "outputs", where, built)
    for j, s in enumerate(outputs):
        if not isinstance(s, N.Sink):
            raise FormatError(f"{where}: outputs[{j}] is a {s.kind} node, but a plan's outputs are Sink nodes")
    features = tuple(_feature_from(f, f"{where} features[{j}]") for j, f in enumerate(_list(d, "features", where)))
    trace = []
    for j, t in enumerate(_list(d, "trace", where)):
        at = f"{where} trace[{j}]"
        t = _obj(t, at)
        trace.append(TraceEntry(
            _int(t, "pass", at), _str(t, "rule", at),
            tuple(_ids_from(t, "removed", at, built)), tuple(_ids_from(t, "added", at, built)),
        ))
    placement = _get(d, "placement", where)
    return Plan(
        tuple(outputs),  # type: ignore[arg-type]
        features,
        tuple(trace),
        _bool(d, "optimized", where),
        None if placement is None else placement_from_dict(placement, f"{where} placement"),
    )


# Fields an entry holds only when they are not their default (by class name: the
# feature body's class lives in compiler/, above this module), so that documents
# written before the fields existed read back, and are written again, byte for byte.
WRITTEN_WHEN_SET: dict[str, tuple[str, ...]] = {
    "Join": ("left_time", "right_time", "before", "after", "lookup"),
    "AsOfJoin": ("no_nulls",),
    "FeatureBody": ("rows",),
    "WindowSpec": ("closed",),
}


def _field_names(cls: type, *, when_set: bool = False) -> tuple[str, ...]:
    """The dataclass fields of ``cls`` every entry holds (tests check the format covers
    each); ``when_set``: also those written only when set (``WRITTEN_WHEN_SET``)."""
    optional = () if when_set else WRITTEN_WHEN_SET.get(cls.__name__, ())
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in optional)
