"""Schema.extend shares storage with the schema it extends; every schema still sees
exactly its own columns, however extensions branch and fail."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relplan.ir import types as T
from relplan.ir.errors import SchemaError
from relplan.ir.schema import Field, Schema, names_in

NAMES = st.sampled_from([f"c{i}" for i in range(12)])


def _fields(names: list[str]) -> tuple[Field, ...]:
    return tuple(Field(n, T.Int64) for n in names)


def _same_as_built_whole(s: Schema, names: list[str]) -> None:
    whole = Schema(_fields(names))
    assert s == whole and hash(s) == hash(whole)
    assert s.names == tuple(names) and len(s) == len(names)
    for n in [f"c{i}" for i in range(12)]:
        assert (n in s) == (n in names)
        if n in names:
            assert s.field(n) == Field(n, T.Int64)
        else:
            with pytest.raises(SchemaError, match=repr(n)):
                s.field(n)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.lists(NAMES, max_size=3)), max_size=12))
def test_extensions_branch_and_fail_like_schemas_built_whole(steps: list[tuple[int, list[str]]]) -> None:
    """Each step extends some earlier schema (so extensions branch off shared storage);
    a duplicate name fails and leaves every schema as it was."""
    made: list[tuple[Schema, list[str]]] = [(Schema(()), [])]
    for pick, extra in steps:
        base, names = made[pick % len(made)]
        if len(set(extra)) != len(extra) or set(extra) & set(names):
            with pytest.raises(SchemaError, match="duplicate column name"):
                base.extend(_fields(extra))
        else:
            made.append((base.extend(_fields(extra)), names + extra))
        for s, ns in made:
            _same_as_built_whole(s, ns)
    every = set().union(*(ns for _, ns in made))
    assert names_in(s for s, _ in made) >= every


def test_a_schema_is_immutable_and_pickles_as_its_fields() -> None:
    s = Schema(_fields(["a"])).extend(_fields(["b"]))
    with pytest.raises(AttributeError):
        s._n = 5  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(s))
    assert back == s and back.names == ("a", "b")
