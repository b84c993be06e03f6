"""The catalog over merged rows and derived features: their JSON documents, fingerprints
that cover every source a merge joins (and a derived feature's inputs), the guardrail
column by column on every joined source, changes reaching the derived features
downstream, lineage through joins and to request fields, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

import relplan as rp
from relplan import cli
from relplan.catalog import Catalog, GuardrailError, collect
from relplan.catalog import serialize as S
from relplan.catalog.fingerprint import digest, fingerprint, reads, semantics, source_reads
from relplan.catalog.lineage import lineage_graph
from relplan.compiler.derived import DerivedFeature
from test_catalog import module as write_module

# One module, as a data scientist writes it; each edit below is a small text change of it.
MODULE = '''
import relplan as rp


class Tx(rp.Source):
    account_id: rp.Int64 = rp.key()
    merchant_id: rp.Int64
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class Merchants(rp.Source):
    merchant_id: rp.Int64 = rp.key()
    category: rp.String
    risk: rp.Float64
    updated: rp.Timestamp = rp.event_time()


class Regions(rp.Source):
    merchant_id: rp.Int64 = rp.key()
    region: rp.String
    unused: rp.String


class Logins(rp.Source):
    account_id: rp.Int64 = rp.key()
    device: rp.String
    lts: rp.Timestamp = rp.event_time()


class Scoring(rp.Request):
    amt: rp.Float64


@rp.transformation(owner="risk")
def risky_amt(tx: Tx, wspec: rp.WindowSpec):
    m = tx.merge_asof(Merchants, by="merchant_id")
    return m[m.risk > 0.5].groupby("account_id").window(wspec)["amt"].sum()


@rp.transformation
def region_count(tx: Tx, wspec: rp.WindowSpec):
    m = tx.merge(Regions, on="merchant_id")
    return m[m.region == "EU"].groupby("account_id").window(wspec).count()


@rp.transformation
def login_count(tx: Tx, wspec: rp.WindowSpec):
    m = tx.merge(Logins, on="account_id", within="10m")
    return m.groupby("account_id").window(wspec)["device"].count()


@rp.transformation
def amt_sum(tx: Tx, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec)["amt"].sum()


risky_amt_1h = risky_amt(window=rp.sliding("1h"))
region_count_1h = region_count(window=rp.sliding("1h"))
login_count_1h = login_count(window=rp.sliding("1h"))
amt_sum_1d = amt_sum(window=rp.sliding("1d"))
amt_ratio = rp.derived("amt_ratio", Scoring.amt / amt_sum_1d, owner="risk", description="this amount vs the day's")
risky_share = rp.derived("risky_share", risky_amt_1h / amt_sum_1d)
'''

JOIN_FEATURES = ("risky_amt_1h", "region_count_1h", "login_count_1h")


def module(tmp_path: Path, text: str = MODULE, name: str = "joins") -> object:
    return write_module(tmp_path, text, name)


def edited(tmp_path: Path, old: str, new: str, name: str = "edited") -> object:
    assert old in MODULE, old
    return module(tmp_path, MODULE.replace(old, new), name)


@pytest.fixture
def base(tmp_path: Path) -> object:
    return module(tmp_path, MODULE, "base")


def feats(mod: object) -> dict[str, object]:
    return dict(collect(mod).features)


# ---- JSON -------------------------------------------------------------------------------------


def test_features_over_merged_rows_round_trip_and_compile_the_same(base: object) -> None:
    fs = feats(base)
    for name in JOIN_FEATURES:
        f = fs[name]
        doc = json.loads(f.to_json())
        assert "rows" in doc["body"]
        back = rp.Feature.from_json(f.to_json())
        assert back.to_json() == f.to_json()
        assert rp.compile([back]).outputs == rp.compile([f]).outputs
        assert rp.compile([back]).to_sql("duckdb") == rp.compile([f]).to_sql("duckdb")
    # A plain feature's document has no rows: it is byte for byte what it was before merges.
    assert "rows" not in json.loads(fs["amt_sum_1d"].to_json())["body"]
    assert "rows" not in semantics(fs["amt_sum_1d"])


def test_derived_features_round_trip_with_their_inputs_inline(base: object) -> None:
    fs = feats(base)
    for name in ("amt_ratio", "risky_share"):
        d = fs[name]
        assert isinstance(d, DerivedFeature)
        text = S.dumps(S.derived_to_dict(d))
        assert S.dumps(S.derived_to_dict(d)) == text  # deterministic
        doc = S.loads(text, "derived")
        assert [i["name"] for i in doc["inputs"]] == [f.name for f in d.inputs]
        back = S.derived_from_dict(doc)
        # (Equal but for the Source classes: another test's module declared classes of the same
        # documents first, and a document reads back as the first class made of it.)
        assert S.dumps(S.derived_to_dict(back)) == text
        assert fingerprint(back) == fingerprint(d) and back.owner == d.owner and back.description == d.description
    doc = json.loads(S.dumps(S.derived_to_dict(fs["amt_ratio"])))
    assert doc["request"] == [["Scoring", "amt", "Float64"]]
    # Compiled where one row holds every input (the request field is the event's own column).
    d = fs["amt_ratio"]
    back = S.derived_from_dict(S.loads(S.dumps(S.derived_to_dict(d))))
    assert rp.compile([back]).outputs == rp.compile([d]).outputs


def test_a_damaged_derived_document_is_a_format_error(base: object) -> None:
    doc = S.derived_to_dict(feats(base)["amt_ratio"])
    bad = json.loads(json.dumps(doc))
    bad["expr"]["right"]["name"] = "nowhere"
    with pytest.raises(S.FormatError, match="nowhere"):
        S.derived_from_dict(bad)
    bad = json.loads(json.dumps(doc))
    bad["request"] = [["Scoring", "amt_sum_1d", "Float64"]]  # the name of an input's column
    with pytest.raises(S.FormatError, match="two values it reads"):
        S.derived_from_dict(bad)
    with pytest.raises(S.FormatError, match="expected a derived document"):
        S.loads(rp.Feature.to_json(feats(base)["amt_sum_1d"]), "derived")


# ---- fingerprints -----------------------------------------------------------------------------


def test_the_columns_read_from_every_source_are_the_ir_lineage(base: object) -> None:
    """What the guardrail uses to tell whether dropping a column breaks a feature must
    be exactly what the IR's lineage derives through the joins."""
    fs = [f for f in feats(base).values() if isinstance(f, rp.Feature)]
    graph = lineage_graph(fs)
    for f in fs:
        derived = {(src, col) for src, col, _ in graph.reads(f.name)}
        assert derived == {(s, c) for s, cols in source_reads(f).items() for c in cols}, f.name
    sr = source_reads(feats(base)["risky_amt_1h"])
    assert sr == {"Merchants": ("merchant_id", "risk", "updated"), "Tx": ("account_id", "merchant_id", "amt", "ts")}
    assert reads(feats(base)["risky_amt_1h"]) == ("account_id", "merchant_id", "amt", "ts")
    assert source_reads(feats(base)["region_count_1h"])["Regions"] == ("merchant_id", "region")  # not 'unused'


@pytest.mark.parametrize("name,old,new,feature,same", [
    ("join key", 'tx.merge(Regions, on="merchant_id")', 'tx.merge(Regions, left_on="account_id", right_on="merchant_id")',
     "region_count_1h", False),
    ("interval bound", 'within="10m"', 'within="20m"', "login_count_1h", False),
    ("interval after", 'within="10m"', 'within=("10m", "1m")', "login_count_1h", False),
    ("as-of tolerance", 'merge_asof(Merchants, by="merchant_id")', 'merge_asof(Merchants, by="merchant_id", tolerance="7d")',
     "risky_amt_1h", False),
    ("as-of exact matches", 'merge_asof(Merchants, by="merchant_id")',
     'merge_asof(Merchants, by="merchant_id", allow_exact_matches=False)', "risky_amt_1h", False),
    ("as-of inner", 'merge_asof(Merchants, by="merchant_id")', 'merge_asof(Merchants, by="merchant_id", how="inner")',
     "risky_amt_1h", False),
    ("dimension column read, retyped", "    risk: rp.Float64", "    risk: rp.Int64", "risky_amt_1h", False),
    ("dimension column unread, added", "    unused: rp.String", "    unused: rp.String\n    extra: rp.Int64",
     "region_count_1h", True),
    ("dimension column unread, dropped", "    category: rp.String\n", "", "risky_amt_1h", True),
    ("dimension keys declared", "    region: rp.String", "    region: rp.String = rp.key()", "region_count_1h", True),
    ("input window of a derived feature", 'amt_sum(window=rp.sliding("1d"))',
     'amt_sum(window=rp.sliding("2d"), name="amt_sum_1d")', "amt_ratio", False),
    ("derived expression", "Scoring.amt / amt_sum_1d", "Scoring.amt / (amt_sum_1d + 1)", "amt_ratio", False),
    ("derived metadata", 'owner="risk", description="this amount vs the day\'s"', 'owner="ops"', "amt_ratio", True),
])
def test_what_changes_a_fingerprint(tmp_path: Path, base: object, name: str, old: str, new: str, feature: str,
                                    same: bool) -> None:
    before = fingerprint(feats(base)[feature])
    after = fingerprint(feats(edited(tmp_path, old, new))[feature])
    assert (before == after) is same, name


def test_a_derived_fingerprint_covers_its_inputs_fingerprints(base: object) -> None:
    d = feats(base)["risky_share"]
    parts = semantics(d)
    assert [i["name"] for i in parts["inputs"]] == ["risky_amt_1h", "amt_sum_1d"]
    assert [digest(i["parts"]) for i in parts["inputs"]] == [fingerprint(f) for f in d.inputs]


# ---- the catalog and the guardrail ------------------------------------------------------------


def test_apply_stores_join_and_derived_features_and_reads_them_back(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    plan = cat.apply(base)
    added = {c.name for c in plan.changes if c.kind == "feature" and c.category == "added"}
    assert added == {*JOIN_FEATURES, "amt_sum_1d", "amt_ratio", "risky_share"}
    sources = {c.name for c in plan.changes if c.kind == "source"}
    assert sources == {"Tx", "Merchants", "Regions", "Logins"}
    again = cat.plan(base)
    assert not again.has_changes, again.text()
    fs = feats(base)
    for name, f in fs.items():
        got = cat.get(name)
        assert fingerprint(got) == fingerprint(f) and type(got) is type(f), name
    assert isinstance(cat.get("amt_ratio"), DerivedFeature)
    # By name, as training code asks for them.
    by_name = rp.compile(["amt_ratio", "amt_sum_1d"], catalog=cat)
    assert by_name.outputs == rp.compile([fs["amt_ratio"], fs["amt_sum_1d"]]).outputs
    assert rp.compile(["risky_amt_1h"], catalog=cat).outputs == rp.compile([fs["risky_amt_1h"]]).outputs
    assert sorted(cat.source_readers("Merchants")) == ["risky_amt_1h"]
    assert {e.name for e in cat.list(owner="risk")} == {"risky_amt_1h", "amt_ratio"}


def test_dropping_a_dimension_column_breaks_exactly_the_join_feature_reading_it(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    schema = pa.schema([("merchant_id", pa.int64()), ("category", pa.string()),
                        ("updated", pa.timestamp("us", tz="UTC"))])  # no 'risk'
    change = cat.check_source("Merchants", schema)
    assert change.category == "breaking"
    # the join feature reading it, and the derived feature reading that
    assert change.affected_features == ("risky_amt_1h", "risky_share")
    unread = cat.check_source("Regions", pa.schema([("merchant_id", pa.int64()), ("region", pa.string())]))
    assert unread.category == "non-breaking" and unread.affected_features == ()
    read = cat.check_source("Regions", pa.schema([("merchant_id", pa.int64()), ("unused", pa.string())]))
    assert read.category == "breaking" and read.affected_features == ("region_count_1h",)
    # The same through plan/apply of the source's new declaration: blocked once deployed.
    cat.deploy("fraud", ["risky_amt_1h"])
    narrower = module(tmp_path, '''
import relplan as rp

class Merchants(rp.Source):
    merchant_id: rp.Int64 = rp.key()
    category: rp.String
    updated: rp.Timestamp = rp.event_time()
''', "narrower")
    plan = cat.plan(narrower, complete=False)
    c = plan.change("Merchants", "source")
    assert c.breaking and c.blocked and c.affected_features == ("risky_amt_1h", "risky_share")
    assert c.affected_jobs == ("fraud",) and "drops column risk (Float64), read by risky_amt_1h" in c.reasons
    with pytest.raises(GuardrailError):
        cat.apply(narrower, complete=False)


@pytest.mark.parametrize("old,new,feature,reason", [
    ('within="10m"', 'within="20m"', "login_count_1h", "join interval join (inner) of Tx with Logins on account_id = "
     "account_id, lts within [ts - 10m, ts + 0s] -> interval join (inner) of Tx with Logins on account_id = account_id, "
     "lts within [ts - 20m, ts + 0s]"),
    ('tx.merge(Regions, on="merchant_id")', 'tx.merge(Regions, left_on="account_id", right_on="merchant_id")',
     "region_count_1h", "join lookup join (inner) of Tx with Regions on merchant_id = merchant_id -> lookup join (inner) "
     "of Tx with Regions on account_id = merchant_id"),
    ("    risk: rp.Float64", "    risk: rp.Int64", "risky_amt_1h", "input column Merchants.risk retyped Float64 -> Int64"),
])
def test_a_changed_join_is_breaking_and_says_how(tmp_path: Path, base: object, old: str, new: str, feature: str,
                                                 reason: str) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    c = cat.plan(edited(tmp_path, old, new)).change(feature)
    assert c.category == "breaking"
    assert reason in c.reasons, c.reasons


def test_a_change_to_an_input_reaches_the_derived_features_downstream(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    cat.deploy("scoring", ["amt_ratio"])
    wider = edited(tmp_path, 'amt_sum(window=rp.sliding("1d"))', 'amt_sum(window=rp.sliding("2d"), name="amt_sum_1d")')
    plan = cat.plan(wider)
    c = plan.change("amt_sum_1d")
    assert c.category == "breaking"
    assert c.affected_features == ("amt_ratio", "risky_share")  # downstream, as SQLMesh reports it
    assert c.affected_jobs == ("scoring",) and c.protected == ("amt_ratio",) and c.blocked
    d = plan.change("amt_ratio")
    assert d.category == "breaking" and d.blocked
    assert "input feature amt_sum_1d: window rp.sliding('1d') -> rp.sliding('2d')" in d.reasons
    assert "deployed jobs affected: scoring" in plan.text()
    assert "reaches derived features downstream: amt_ratio, risky_share" in plan.text()
    with pytest.raises(GuardrailError):
        cat.apply(wider)
    # The way out: publish the derived feature anew; its job keeps the version it runs,
    # which still computes over the input as it was (its inputs are stored whole).
    cat.apply(wider, new_version=["amt_ratio"])
    assert cat.deployments() == {"scoring": {"amt_ratio": 1}}
    assert cat.get("amt_ratio@v1").inputs[0].spec == rp.sliding("1d")
    assert cat.get("amt_ratio").inputs[0].spec == rp.sliding("2d")


def test_an_input_that_only_adds_outputs_leaves_its_derived_feature_non_breaking(tmp_path: Path) -> None:
    text = MODULE.replace("Scoring.amt / amt_sum_1d", "Scoring.amt / amt_sum_1d.column('amt_sum_1d_total')").replace(
        'return tx.groupby("account_id").window(wspec)["amt"].sum()',
        'return tx.groupby("account_id").window(wspec).agg(total=("amt", "sum"))')
    cat = Catalog(tmp_path / "c.db")
    cat.apply(module(tmp_path, text.replace("risky_amt_1h / amt_sum_1d", "risky_amt_1h / amt_sum_1d.column("
                                                                          "'amt_sum_1d_total')"), "agg1"))
    more = text.replace('agg(total=("amt", "sum"))', 'agg(total=("amt", "sum"), n=("amt", "count"))')
    plan = cat.plan(module(tmp_path, more.replace("risky_amt_1h / amt_sum_1d", "risky_amt_1h / amt_sum_1d.column("
                                                                               "'amt_sum_1d_total')"), "agg2"))
    assert plan.change("amt_sum_1d").category == "non-breaking"
    d = plan.change("amt_ratio")
    assert d.category == "non-breaking", d.reasons
    assert any(r.startswith("input feature amt_sum_1d: adds output _n") for r in d.reasons), d.reasons


def test_removing_an_input_names_the_derived_features_it_reaches(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    without = module(tmp_path, MODULE.split("risky_amt_1h = ")[0] + "region_count_1h = region_count(window=rp.sliding('1h'))\n",
                     "fewer")
    plan = cat.plan(without)
    c = plan.change("amt_sum_1d")
    assert c.category == "removed" and c.affected_features == ("amt_ratio", "risky_share")


# ---- lineage ----------------------------------------------------------------------------------


def test_catalog_lineage_flows_through_joins_and_into_derived_features(tmp_path: Path, base: object) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.apply(base)
    cat.deploy("scoring", ["amt_ratio"])
    g = cat.lineage()
    assert ("Merchants", "risk", frozenset({"rows"})) in g.reads("risky_amt_1h")
    assert g.readers("Merchants", "risk") == ["risky_amt_1h", "risky_share"]
    assert g.readers("Merchants", "risk", derived=False) == ["risky_amt_1h"]
    assert g.readers("Merchants", "category") == []
    assert g.inputs("risky_share") == ["amt_sum_1d", "risky_amt_1h"]
    assert g.request_fields("amt_ratio") == [("Scoring", "amt")]
    assert g.requests == [("Scoring", "amt")]
    assert g.jobs_affected("amt_sum_1d") == ["scoring"]  # through the derived feature
    assert g.derived_from("amt_sum_1d") == ["amt_ratio", "risky_share"]
    assert {(s, c) for s, c, _ in g.reads("amt_ratio")} == {("Tx", "account_id"), ("Tx", "amt"), ("Tx", "ts")}
    text = g.to_text("amt_ratio")
    assert "inputs amt_sum_1d" in text and "request Scoring.amt" in text
    dot = g.to_dot()
    assert '"request:Scoring.amt" -> "feature:amt_ratio"' in dot
    assert '"feature:amt_sum_1d" -> "feature:amt_ratio"' in dot
    nodes = {tuple(n["id"]): n for n in g.to_dict()["nodes"]}
    assert nodes["request", "Scoring", "amt"] == {"id": ["request", "Scoring", "amt"], "layer": "request",
                                                  "request": "Scoring", "field": "amt"}


# ---- the command line -------------------------------------------------------------------------


def test_cli_plans_applies_and_shows_join_and_derived_features(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "features.py").write_text(MODULE)
    db = str(tmp_path / "c.db")
    assert cli.main(["apply", "features.py", "--catalog", db]) == 0
    assert "risky_share" in capsys.readouterr().out
    assert cli.main(["plan", "features.py", "--catalog", db]) == 0
    capsys.readouterr()
    assert cli.main(["deploy", "scoring", "amt_ratio", "--catalog", db]) == 0
    capsys.readouterr()
    assert cli.main(["show", "amt_ratio", "--catalog", db]) == 0
    out = capsys.readouterr().out
    assert "derived:" in out and "amt / amt_sum_1d" in out and "inputs:" in out and "Scoring.amt (Float64)" in out
    assert cli.main(["show", "risky_share", "--catalog", db]) == 0  # no batch plan holds both inputs: said, not raised
    assert "no batch plan" in capsys.readouterr().out
    assert cli.main(["show", "Merchants", "--catalog", db]) == 0
    assert "risky_amt_1h" in capsys.readouterr().out
    assert cli.main(["lineage", "Merchants.risk", "--catalog", db]) == 0
    out = capsys.readouterr().out
    assert "risky_amt_1h" in out and "risky_share" in out
    (tmp_path / "features.py").write_text(MODULE.replace('within="10m"', 'within="20m"').replace(
        'amt_sum(window=rp.sliding("1d"))', 'amt_sum(window=rp.sliding("2d"), name="amt_sum_1d")'))
    assert cli.main(["plan", "features.py", "--catalog", db]) == 1
    out = capsys.readouterr().out
    assert "interval join" in out and "BLOCKED" in out and "input feature amt_sum_1d" in out
    assert cli.main(["apply", "features.py", "--catalog", db]) == 1
    capsys.readouterr()
    assert cli.main(["apply", "features.py", "--catalog", db, "--new-version", "amt_ratio", "--new-version",
                     "risky_share"]) == 0
