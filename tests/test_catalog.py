"""The catalog: fingerprints, the change classifier, versions, the guardrail, name resolution,
several processes on one file, and damaged files."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

import relplan as rp
from relplan.catalog import Catalog, CatalogError, ConflictError, GuardrailError, collect, fingerprint, load_module
from relplan.catalog.definitions import DefinitionError

ROOT = Path(__file__).resolve().parents[1]

# One feature module, written as a data scientist would; each edit below is a small text change of it.
MODULE = '''
import relplan as rp


class Transactions(rp.Source):
    account_id: rp.Int64 = rp.key()
    merchant: rp.String
    status: rp.String
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation(owner="risk", tags=["fraud"])
def failed_count(tx: Transactions, wspec: rp.WindowSpec):
    """Failed transactions of the account."""
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation(owner="risk")
def amt_stats(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(total=("amt", "sum"))


failed_count_1h = failed_count(window=rp.sliding("1h"))
amt_stats_1d = amt_stats(window=rp.sliding("1d"))
'''


def module(tmp_path: Path, text: str, name: str = "features") -> object:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return load_module(str(path))


def edited(tmp_path: Path, old: str, new: str, name: str = "edited") -> object:
    assert old in MODULE, old
    return module(tmp_path, MODULE.replace(old, new), name)


@pytest.fixture
def base(tmp_path: Path) -> object:
    return module(tmp_path, MODULE, "base")


# (edit: old text -> new text, the feature it touches, the category expected)
EDITS = [
    ("description", '"""Failed transactions of the account."""', '"""Failed payments."""', "failed_count_1h", "metadata-only"),
    ("owner", '@rp.transformation(owner="risk", tags=["fraud"])', '@rp.transformation(owner="payments", tags=["fraud"])',
     "failed_count_1h", "metadata-only"),
    ("tags", 'tags=["fraud"]', 'tags=["fraud", "tier1"]', "failed_count_1h", "metadata-only"),
    ("reformatted, local variable renamed",
     '    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()',
     '    failed = tx[\n        tx.status\n        == "failed"\n    ]\n\n    return failed.groupby("account_id").window(wspec).count()',
     "failed_count_1h", "unchanged"),
    ("folded constant", 'tx.status == "failed"', '(tx.status == "failed") & True',
     "failed_count_1h", "unchanged"),
    ("window", 'failed_count(window=rp.sliding("1h"))', 'failed_count(window=rp.sliding("2h"), name="failed_count_1h")',
     "failed_count_1h", "breaking"),
    ("filter", 'tx.status == "failed"', 'tx.status == "declined"', "failed_count_1h", "breaking"),
    ("aggregate", 'agg(total=("amt", "sum"))', 'agg(total=("amt", "max"))', "amt_stats_1d", "breaking"),
    ("key", 'groupby("account_id").window(wspec).count()', 'groupby("merchant").window(wspec).count()',
     "failed_count_1h", "breaking"),
    ("input column type", "    amt: rp.Float64\n", "    amt: rp.Int64\n", "amt_stats_1d", "breaking"),
    ("allowed lateness", 'event_time(lateness="5m")', 'event_time(lateness="10m")', "failed_count_1h", "breaking"),
    ("added output", 'agg(total=("amt", "sum"))', 'agg(total=("amt", "sum"), biggest=("amt", "max"))',
     "amt_stats_1d", "non-breaking"),
    ("dropped output", 'agg(total=("amt", "sum"))', 'agg(biggest=("amt", "max"))', "amt_stats_1d", "breaking"),
    ("source column added", "    amt: rp.Float64\n", "    amt: rp.Float64\n    device: rp.String\n",
     "failed_count_1h", "unchanged"),
]


@pytest.mark.parametrize("what, old, new, feature, category", EDITS, ids=[e[0] for e in EDITS])
def test_each_edit_is_classified(tmp_path: Path, base: object, what: str, old: str, new: str, feature: str, category: str) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    plan = cat.plan(edited(tmp_path, old, new))
    change = plan.change(feature)
    assert change.category == category, plan.text()
    before = fingerprint(collect(base).features[feature])
    after = fingerprint(collect(edited(tmp_path, old, new, "again")).features[feature])
    assert (before == after) == (category in ("unchanged", "metadata-only")), what
    if category == "breaking":
        assert change.reasons and plan.breaking
    # The other feature is untouched by an edit of one (unless both read what changed).
    other = "amt_stats_1d" if feature == "failed_count_1h" else "failed_count_1h"
    if what not in ("input column type", "allowed lateness"):
        assert plan.change(other).category == "unchanged", plan.text()


def test_reasons_say_what_changed(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    text = cat.plan(edited(tmp_path, 'tx.status == "failed"', 'tx.status == "declined"')).text()
    assert "BREAKING" in text and "filter status = 'failed' -> status = 'declined'" in text
    text = cat.plan(edited(tmp_path, "    amt: rp.Float64\n", "    amt: rp.Int64\n", "e2")).text()
    assert "Transactions.amt retyped Float64 -> Int64" in text
    assert "retypes column amt Float64 -> Int64, read by amt_stats_1d" in text


def test_source_schema_checked_before_data_arrives(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    cat.deploy("scoring", ["failed_count_1h"])
    schema = pa.schema([("account_id", pa.int64()), ("merchant", pa.string()), ("amt", pa.float64()),
                        ("ts", pa.timestamp("us", tz="UTC"))])  # status dropped
    change = cat.check_source("Transactions", schema)
    assert change.category == "breaking"
    assert change.affected_features == ("failed_count_1h",)  # exactly the features whose lineage reads it
    assert change.affected_jobs == ("scoring",)
    # A column no feature reads may go.
    unread = pa.schema([f for f in schema] + [("status", pa.string())]).remove(1)
    assert cat.check_source("Transactions", unread).category == "non-breaking"
    retyped = schema.append(pa.field("status", pa.int64()))
    assert cat.check_source("Transactions", retyped).affected_features == ("failed_count_1h",)
    with pytest.raises(CatalogError, match="no source 'Transaction'.*Transactions"):
        cat.check_source("Transaction", schema)


def test_versions_history_and_resolution(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    applied = cat.apply(base)
    assert applied.applied and {c.category for c in applied.changes} == {"added"}
    v1 = cat.get("failed_count_1h")
    assert v1.owner == "risk" and v1.tags == ("fraud",) and v1.description == "Failed transactions of the account."
    cat.apply(edited(tmp_path, 'tx.status == "failed"', 'tx.status == "declined"'))
    assert [e.version for e in cat.versions("failed_count_1h")] == [1, 2]
    assert cat.get("failed_count_1h@v1") == v1
    assert fingerprint(cat.get("failed_count_1h")) != fingerprint(v1)
    assert fingerprint(cat.get("failed_count_1h@v2")) == fingerprint(cat.get("failed_count_1h"))
    # Applying the same definitions again writes nothing.
    generation = cat.generation
    again = cat.apply(edited(tmp_path, 'tx.status == "failed"', 'tx.status == "declined"', "same"))
    assert not again.has_changes and cat.generation == generation
    actions = [h.action for h in cat.history("failed_count_1h")]
    assert actions[0] == "added" and actions[1].startswith("new version (breaking)")
    with pytest.raises(CatalogError, match="no feature 'faild_count_1h'.*did you mean failed_count_1h"):
        cat.get("faild_count_1h")
    with pytest.raises(CatalogError, match="has no version 7"):
        cat.get("failed_count_1h@v7")
    with pytest.raises(CatalogError, match="not a feature reference"):
        cat.get("failed count")


def test_list_search_deprecate_remove(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    assert [e.name for e in cat.list(owner="risk")] == ["amt_stats_1d", "failed_count_1h"]
    assert [e.name for e in cat.list(tag="fraud")] == ["failed_count_1h"]
    assert [e.name for e in cat.list(source="Transactions", key="account_id", name="failed_*")] == ["failed_count_1h"]
    assert [e.name for e in cat.search("FAILED TRANSACTIONS")] == ["failed_count_1h"]
    assert [e.name for e in cat.list("source")] == ["Transactions"]
    cat.deprecate("amt_stats_1d", "use amt_stats_7d")
    assert [e.name for e in cat.list(include_deprecated=False)] == ["failed_count_1h"]
    with pytest.warns(DeprecationWarning, match="use amt_stats_7d"):
        cat.get("amt_stats_1d")
    # A complete set of definitions without a feature removes it; its versions stay resolvable.
    only_failed = [f for f in collect(base).features.values() if f.name == "failed_count_1h"]
    plan = cat.apply(only_failed)
    assert plan.change("amt_stats_1d").category == "removed"
    with pytest.raises(CatalogError, match="was removed.*amt_stats_1d@v1"):
        cat.get("amt_stats_1d")
    assert cat.get("amt_stats_1d@v1").name == "amt_stats_1d"
    # partial definitions leave the others alone
    assert not cat.plan(only_failed, complete=False).has_changes


def test_guardrail_blocks_breaking_changes_to_deployed_features(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    assert cat.deploy("fraud_scoring", ["failed_count_1h"]) == {"failed_count_1h": 1}
    breaking = edited(tmp_path, 'rp.sliding("1h"))', 'rp.sliding("2h"), name="failed_count_1h")')
    plan = cat.plan(breaking)
    change = plan.change("failed_count_1h")
    assert change.blocked and change.affected_jobs == ("fraud_scoring",)
    assert "BLOCKED" in plan.text() and "new_version=['failed_count_1h']" in plan.text()
    generation = cat.generation
    with pytest.raises(GuardrailError, match="failed_count_1h") as refused:
        cat.apply(breaking)
    assert refused.value.plan.blocked
    assert cat.generation == generation and [e.version for e in cat.versions("failed_count_1h")] == [1]
    # Way out 1: publish as a new version; the job keeps v1, which stays resolvable.
    done = cat.apply(breaking, new_version=["failed_count_1h"])
    assert "published as a new version" in done.text()
    assert cat.deployments() == {"fraud_scoring": {"failed_count_1h": 1}}
    assert cat.get("failed_count_1h@v1").spec == rp.sliding("1h")
    assert cat.get("failed_count_1h").spec == rp.sliding("2h")
    # Way out 2: force; the job moves to the new version.
    cat.apply(edited(tmp_path, 'rp.sliding("1h"))', 'rp.sliding("3h"), name="failed_count_1h")', "e3"), force=True)
    assert cat.deployments() == {"fraud_scoring": {"failed_count_1h": 3}}
    # Removing a deployed feature is refused too; a metadata edit is not.
    with pytest.raises(GuardrailError):
        cat.apply([collect(base).features["amt_stats_1d"]])
    cat.apply(edited(tmp_path, 'tags=["fraud"]', 'tags=["fraud", "x"]', "e4"), force=True)
    cat.protect("amt_stats_1d")
    assert cat.plan(edited(tmp_path, 'agg(total=("amt", "sum"))', 'agg(total=("amt", "max"))', "e5")).change("amt_stats_1d").blocked


def test_a_non_breaking_change_moves_the_jobs_along(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    cat.deploy("scoring", ["amt_stats_1d"])
    cat.apply(edited(tmp_path, 'agg(total=("amt", "sum"))', 'agg(total=("amt", "sum"), biggest=("amt", "max"))'))
    assert cat.deployments() == {"scoring": {"amt_stats_1d": 2}}


def test_plan_then_apply_refuses_a_catalog_that_moved(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    reviewed = cat.plan(base)
    Catalog(tmp_path / "c.db").apply([collect(base).features["amt_stats_1d"]])  # someone else, meanwhile
    with pytest.raises(ConflictError, match="changed since this plan"):
        cat.apply(base, plan=reviewed)
    cat.apply(base, plan=cat.plan(base))


def _events() -> pa.Table:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    rows = [(1, "m1", "failed", 10.0, 0), (1, "m1", "ok", 5.0, 10), (1, "m2", "failed", 7.0, 20), (2, "m1", "failed", 1.0, 30)]
    return pa.table({
        "account_id": [r[0] for r in rows], "merchant": [r[1] for r in rows], "status": [r[2] for r in rows],
        "amt": [r[3] for r in rows], "ts": pa.array([t0 + dt.timedelta(minutes=r[4]) for r in rows], pa.timestamp("us", tz="UTC")),
    })


def test_names_resolve_in_compile_training_data_and_the_online_store(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    feats = collect(base).features
    by_name = rp.compile(["failed_count_1h", "amt_stats_1d@v1"], catalog=cat)
    assert by_name.explain() == rp.compile([feats["failed_count_1h"], feats["amt_stats_1d"]]).explain()
    with pytest.raises(rp.FeatureError, match="pass catalog="):
        rp.compile(["failed_count_1h"])
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    spine = pa.table({"account_id": [1, 2], "at": pa.array([t0 + dt.timedelta(hours=1)] * 2, pa.timestamp("us", tz="UTC"))})
    tables = {"Transactions": _events()}
    named = rp.pitc_join_features(spine, ["failed_count_1h", "amt_stats_1d"], catalog=cat, tables=tables)
    direct = rp.pitc_join_features(spine, [feats["failed_count_1h"], feats["amt_stats_1d"]], tables=tables)
    assert named.equals(direct)
    assert named.column("failed_count_1h").to_pylist() == [2, 1]
    with rp.online_store("sqlite://", catalog=cat) as store:
        store.materialize(["failed_count_1h"], tables, until=t0 + dt.timedelta(hours=1))
        served = store.get_online_features([{"account_id": 1}], ["failed_count_1h"], at=t0 + dt.timedelta(hours=1))
        assert served.column("failed_count_1h").to_pylist() == [2]


def test_definitions_errors(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no such file"):
        load_module(str(tmp_path / "missing.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("import relplan\nraise ValueError('boom')\n")
    with pytest.raises(DefinitionError, match="importing .*bad.py failed: ValueError: boom"):
        load_module(str(bad))
    with pytest.raises(DefinitionError, match="no module named 'no_such_module_xyz'"):
        load_module("no_such_module_xyz")
    with pytest.raises(rp.FeatureError, match="definitions are features"):
        collect(42)


def test_a_damaged_catalog_gives_a_clear_error_and_loses_nothing_else(tmp_path: Path, base: object) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, but someone's notes" * 100)
    with pytest.raises(CatalogError, match="not a readable relplan catalog.*left as it is"):
        Catalog(garbage)
    assert garbage.read_bytes().startswith(b"this is not a database")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.commit()
    with pytest.raises(CatalogError, match="not a relplan catalog"):
        Catalog(other)
    path = tmp_path / "c.db"
    Catalog(path).apply(base)
    with sqlite3.connect(path) as db:  # one definition damaged on disk
        db.execute("UPDATE versions SET definition = '{\"relplan\": 1, ' WHERE name = 'amt_stats_1d'")
    cat = Catalog(path)
    with pytest.raises(CatalogError, match="stored definition of amt_stats_1d@v1 is damaged"):
        cat.get("amt_stats_1d")
    assert cat.get("failed_count_1h").name == "failed_count_1h"
    assert len(cat.list()) == 2
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    with pytest.raises(CatalogError, match="newer relplan"):
        Catalog(path)


CONCURRENT = textwrap.dedent('''
    import sys, time
    sys.path[:0] = [{root!r}]
    from relplan.catalog import Catalog, load_module
    defs = load_module(sys.argv[2])
    cat = Catalog(sys.argv[1])
    while time.time() < float(sys.argv[3]):
        pass
    for _ in range(5):
        cat.apply(defs)
    print("ok")
''')


def test_concurrent_applies_from_two_processes(tmp_path: Path, base: object) -> None:
    """Two processes apply different definitions of the same features at once, repeatedly:
    every apply is one locked transaction, so the file ends consistent, versions contiguous."""
    import time

    path = tmp_path / "c.db"
    Catalog(path).apply(base)
    script = tmp_path / "apply.py"
    script.write_text(CONCURRENT.format(root=str(ROOT.parent)))
    one = tmp_path / "one.py"
    one.write_text(MODULE.replace('rp.sliding("1h"))', 'rp.sliding("2h"), name="failed_count_1h")'))
    two = tmp_path / "two.py"
    two.write_text(MODULE.replace('rp.sliding("1h"))', 'rp.sliding("3h"), name="failed_count_1h")'))
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(m), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in (one, two)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.strip() == "ok", err
    cat = Catalog(path)
    versions = [e.version for e in cat.versions("failed_count_1h")]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Each version row is whole, and the head is one of the two definitions.
    assert cat.get("failed_count_1h").spec in (rp.sliding("2h"), rp.sliding("3h"))
    for v in versions:
        cat.get(f"failed_count_1h@v{v}")
    # Every new version was logged once, with the generation it was written in.
    logged = [h for h in cat.history("failed_count_1h") if h.version is not None and h.action != "deployed"]
    assert sorted(h.version for h in logged) == versions
    assert len({h.generation for h in logged}) == len(logged)


def test_the_columns_a_fingerprint_covers_are_the_ir_lineage(tmp_path: Path, base: object) -> None:
    """The classifier's column-level answers (which features a dropped column breaks) use the
    columns each feature reads; they must be exactly what the IR's lineage derives."""
    from relplan.catalog.fingerprint import reads
    from relplan.catalog.lineage import lineage_graph

    extra = module(tmp_path, MODULE + '''
@rp.transformation
def per_window(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.amt > 10].groupby("merchant").window(wspec)["amt"].max()


@rp.transformation
def derived_key(tx: Transactions, wspec: rp.WindowSpec):
    tx = tx.assign(big=tx.amt > 100)
    return tx.groupby(["account_id", "big"]).window(wspec)["merchant"].last()


more = [per_window(window=rp.tumbling("1d")), per_window(window=rp.hopping("1h", "10m")),
        derived_key(window=rp.lifetime()), failed_count(window=rp.lifetime())]
''', "lineage_defs")
    feats = list(collect(extra).features.values())
    graph = lineage_graph(feats)
    assert len(feats) == 6
    for f in feats:
        derived = {(src, col) for src, col, _ in graph.reads(f.name)}
        assert derived == {("Transactions", c) for c in reads(f)}, f.name
