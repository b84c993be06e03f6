"""The ``relplan`` command line (cli.py), run as a user runs it: in a subprocess, on a
catalog in a temporary folder and a feature module the test writes.

Most runs are ``python -m relplan.cli``; the installed ``relplan`` console script
(next to ``sys.executable``) runs too. Each subprocess costs about a second of
imports, so a test walks a whole flow (apply, edit, plan, deploy, refused apply,
new version, show) rather than one step each. Help texts and the exit codes of
unexpected failures are checked in-process (``main(argv)``), where they are cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from relplan import cli

FEATURES = '''
import relplan as rp


class Transactions(rp.Source):
    cc_num: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation(owner="fraud-team", tags=["fraud", "counts"])
def failed_count(tx: Transactions, wspec: rp.WindowSpec):
    """Failed transactions per account."""
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation(owner="risk")
def amt_mean(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby(["cc_num", "merchant"])["amt"].window(wspec).mean()


tx_failed = failed_count(window=rp.sliding("1d"), name="tx_failed")
amt_mean_1h = amt_mean(window=rp.sliding("1h"))
'''

COMMANDS = {  # every command and the options its --help must mention
    "plan": ["MODULE", "--catalog", "--partial", "--new-version", "--force", "--json", "--all", "exit codes"],
    "apply": ["MODULE", "--catalog", "--partial", "--new-version", "--force"],
    "list": ["--catalog", "--source", "--key", "--owner", "--tag", "--name", "--search", "--sources", "--json"],
    "show": ["NAME[@vN]", "--catalog", "--json"],
    "lineage": ["NAME", "--catalog", "--format", "text,json,dot,svg", "--output"],
    "history": ["NAME", "--catalog", "--json"],
    "deploy": ["JOB", "NAME", "--catalog"],
    "undeploy": ["JOB", "--catalog"],
    "protect": ["NAME", "--off", "--catalog"],
    "deprecate": ["NAME", "--reason", "--catalog"],
    "explain": ["MODULE", "--optimize", "--verbose"],
    "sql": ["MODULE", "--dialect", "duckdb,spark,flink", "--mode", "--optimize"],
}

CONSOLE_SCRIPT = Path(sys.executable).parent / ("relplan.exe" if os.name == "nt" else "relplan")


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, script: bool = False) -> subprocess.CompletedProcess[str]:
    """``relplan ARGS`` in ``cwd``: ``python -m relplan.cli``, or the console script."""
    exe = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "relplan.cli"]
    full_env = {k: v for k, v in os.environ.items() if k != cli.CATALOG_ENV}
    full_env.update(env or {})
    done = subprocess.run([*exe, *args], check=False, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}, expected {code}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def error(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """An error exit (2) with one ``relplan: error:`` line naming every fragment."""
    assert done.returncode == 2, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stderr.startswith("relplan: error: "), done.stderr
    for f in fragments:
        assert f in done.stderr, (f, done.stderr)
    return done.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "features.py").write_text(FEATURES)
    return tmp_path


def edit(project: Path, old: str, new: str) -> None:
    path = project / "features.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# -- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command_exits_0_and_names_its_options(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: relplan {command}")
    for option in COMMANDS[command]:
        assert option in text, (command, option)
    # every option has its help line (argparse prints none for an option without help=)
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        assert action.help, (command, action.dest)


def test_the_console_script_runs_help_and_plans_on_an_empty_catalog(project: Path) -> None:
    assert CONSOLE_SCRIPT.exists(), f"reinstall: .venv/bin/pip install -e . --no-deps ({CONSOLE_SCRIPT} is missing)"
    text = ok(run(project, "--help", script=True))
    for command in COMMANDS:
        assert f"    {command}" in text
    assert "exit codes:" in text and "RELPLAN_CATALOG" in text

    # plan on an empty catalog: everything added, exit 0, and no file created
    text = ok(run(project, "plan", "features.py", script=True))
    assert "+ source Transactions" in text and "+ feature tx_failed" in text and "+ feature amt_mean_1h" in text
    assert "added" in text and "summary: 3 added" in text
    assert "no catalog at relplan-catalog.db yet" in text
    assert not (project / "relplan-catalog.db").exists()


# -- the flow ------------------------------------------------------------------------------------


def generation(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def test_apply_edit_plan_deploy_refuse_publish_show(project: Path) -> None:
    db = project / "team.db"
    env = {cli.CATALOG_ENV: str(db)}  # the catalog from the environment, as CI sets it

    text = ok(run(project, "apply", "features.py", env=env))
    assert "applied to" in text and "summary: 3 added" in text and db.exists()
    assert "nothing to apply" in ok(run(project, "apply", "features.py", env=env))

    # a window edited: BREAKING with the reason, exit 1 (not deployed, so not blocked)
    edit(project, 'sliding("1d"), name="tx_failed"', 'sliding("2d"), name="tx_failed"')
    text = ok(run(project, "plan", "features.py", env=env), 1)
    assert "! feature tx_failed" in text and "BREAKING (v1)" in text
    assert "window rp.sliding('1d') -> rp.sliding('2d')" in text
    assert "BLOCKED" not in text
    plan = json.loads(ok(run(project, "plan", "features.py", "--json", env=env), 1))
    assert plan["breaking"] is True and plan["summary"] == {"unchanged": 2, "breaking": 1}
    change = next(c for c in plan["changes"] if c["name"] == "tx_failed")
    assert change["category"] == "breaking" and not change["blocked"]

    # deployed: apply of the breaking edit is refused, exit 1, the catalog unchanged
    assert "deployed tx_failed@v1 in job fraud_scoring" in ok(
        run(project, "deploy", "fraud_scoring", "tx_failed", "--catalog", str(db)))
    before = generation(db)
    done = run(project, "apply", "features.py", env=env)
    text = ok(done, 1)
    assert "BLOCKED: tx_failed" in text and "deployed jobs affected: fraud_scoring" in text
    assert "relplan: apply refused" in done.stderr and "--new-version tx_failed" in done.stderr
    assert generation(db) == before
    assert ok(run(project, "plan", "features.py", env=env), 1).count("BLOCKED") == 1

    # published as a new version: applied; the job keeps v1, which still resolves
    text = ok(run(project, "apply", "features.py", "--new-version", "tx_failed", env=env))
    assert "published as a new version" in text
    text = ok(run(project, "show", "tx_failed@v1", env=env))
    assert text.startswith("feature tx_failed@v1 (superseded; current: v2, active)")
    assert "rp.sliding('1d')" in text and "fraud_scoring  v1" in text
    assert "frame=(t-1d, t]" in text  # its compiled plan
    text = ok(run(project, "show", "tx_failed", env=env))
    assert text.startswith("feature tx_failed@v2 (current)")
    for part in ("fraud-team", "Failed transactions per account.", "v1       superseded", "v2       active",
                 "new version (breaking), published", "frame=(t-2d, t]", "Source Transactions"):
        assert part in text, part
    shown = json.loads(ok(run(project, "show", "tx_failed@v1", "--json", env=env)))
    assert shown["ref"] == "tx_failed@v1" and shown["current_version"] == 2
    assert shown["deployments"] == {"fraud_scoring": 1} and len(shown["versions"]) == 2

    # history, deprecate, list
    text = ok(run(project, "history", "tx_failed", env=env))
    assert "added" in text and "deployed" in text and "job fraud_scoring" in text
    ok(run(project, "deprecate", "amt_mean_1h", "--reason", "use amt_mean_1d", env=env))
    text = ok(run(project, "list", env=env))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["FEATURE", "VERSION", "STATUS", "SOURCE"]
    assert any(ln.split()[:3] == ["tx_failed", "v2", "active"] and "fraud_scoring" in ln for ln in lines)
    assert any(ln.split()[:3] == ["amt_mean_1h", "v1", "deprecated"] for ln in lines)


def test_list_show_lineage_on_a_catalog(project: Path) -> None:
    ok(run(project, "apply", "features.py"))  # the default catalog: ./relplan-catalog.db
    assert (project / "relplan-catalog.db").exists()
    ok(run(project, "deploy", "scoring", "tx_failed"))

    entries = json.loads(ok(run(project, "list", "--owner", "fraud-team", "--json")))
    assert [e["name"] for e in entries] == ["tx_failed"] and entries[0]["jobs"] == ["scoring"]
    text = ok(run(project, "list", "--key", "cc_num"))
    assert "amt_mean_1h" in text and "tx_failed" not in text
    assert "no features match" in ok(run(project, "list", "--tag", "nope"))
    text = ok(run(project, "list", "--sources"))
    assert "Transactions" in text and "status:String" in text

    text = ok(run(project, "show", "Transactions"))  # a source's name shows the source
    assert text.startswith("source Transactions@v1") and "amt_mean_1h, tx_failed" in text

    text = ok(run(project, "lineage", "tx_failed"))
    assert "features (1):" in text and "tx_failed" in text and "amt_mean_1h" not in text
    assert "Transactions.status" in text and "rows" in text and "jobs  scoring" in text
    out_file = project / "lineage.dot"
    ok(run(project, "lineage", "amt_mean_1h", "--format", "dot", "--output", str(out_file)))
    dot = out_file.read_text()
    assert dot.startswith("digraph lineage {") and "amt_mean_1h" in dot and "amt" in dot and "tx_failed" not in dot
    # svg is drawn by Graphviz's dot, which .ci/run installs: in CI it must be there
    if shutil.which("dot") or os.environ.get("CI"):
        assert "<svg" in ok(run(project, "lineage", "tx_failed", "--format", "svg"))
    text = ok(run(project, "lineage", "Transactions.merchant"))
    assert "amt_mean_1h" in text and "tx_failed" not in text


def test_explain_and_sql_need_no_catalog(project: Path) -> None:
    text = ok(run(project, "explain", "features.py"))
    assert text.startswith("Sink Transactions")
    assert "frame=(t-1d, t] aggs=[tx_failed := count(*) filter (status = 'failed')]" in text
    assert "aggs=[amt_mean_1h := mean(amt)]" in text
    assert "Project" not in ok(run(project, "explain", "features.py", "--optimize"))
    assert "EPOCH_US" in ok(run(project, "sql", "features.py"))
    assert "UNIX_MICROS" in ok(run(project, "sql", "features.py", "--dialect", "spark"))
    text = ok(run(project, "sql", "features.py", "--dialect", "flink", "--mode", "streaming"))
    assert "'execution.runtime-mode' = 'streaming'" in text and "CREATE TABLE `Transactions`" in text
    # a dotted module name, from the current folder
    assert ok(run(project, "explain", "features")).startswith("Sink Transactions")
    assert not (project / "relplan-catalog.db").exists()


# -- errors: exit 2, one clear line, never a traceback --------------------------------------------


def test_errors_exit_2_with_a_clear_message(project: Path) -> None:
    (project / "broken.py").write_text("import relplan as rp\nraise ValueError('the feature store is down')\n")
    error(run(project, "plan", "broken.py"), "importing broken.py failed", "ValueError: the feature store is down")
    error(run(project, "explain", "no_such_file.py"), "no such file: no_such_file.py")
    error(run(project, "sql", "no_such.module"), "no module named 'no_such.module'")

    # read-only commands do not create a catalog
    error(run(project, "list"), "no catalog at relplan-catalog.db")
    error(run(project, "show", "tx_failed", "--catalog", "missing.db"), "no catalog at missing.db")
    assert not (project / "relplan-catalog.db").exists() and not (project / "missing.db").exists()
    error(run(project, "apply", "features.py", "--catalog", str(project / "no" / "folder.db")), "no folder")

    ok(run(project, "apply", "features.py"))
    error(run(project, "show", "tx_faild"), "no feature 'tx_faild'", "did you mean tx_failed?")
    error(run(project, "lineage", "amt_mean"), "no feature 'amt_mean'", "did you mean amt_mean_1h?")


def test_more_errors_in_process(project: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """The same contract through ``main(argv)`` (no subprocess: cheaper)."""
    monkeypatch.chdir(project)
    monkeypatch.delenv(cli.CATALOG_ENV, raising=False)

    def error_in_process(argv: list[str], *fragments: str) -> None:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        for f in fragments:
            assert f in err, (f, err)

    error_in_process(["list", "--catalog", "features.py"], "relplan: error: features.py is not a readable relplan catalog")
    error_in_process(["list", "--catalog", str(project)], "is a folder, not a catalog file")
    assert cli.main(["apply", "features.py"]) == 0
    error_in_process(["show", "tx_failed@v7"], "relplan: error: feature 'tx_failed' has no version 7")
    error_in_process(["show", "tx_*"], "is not a feature reference")
    error_in_process(["deploy", "job", "nope"], "relplan: error: no feature 'nope'")
    error_in_process(["undeploy", "nope"], "relplan: error: no deployed job 'nope'")
    error_in_process(["plan", "features.py", "--new-version", "nope"], "new_version names features not in the definitions")
    error_in_process(["lineage", "Transactions.sttus"], "has no column 'sttus'", "did you mean 'status'?")
    error_in_process(["sql", "features.py", "--mode", "streaming"], "--mode is for --dialect flink only")
    error_in_process(["plan"], "the following arguments are required: MODULE")  # usage: argparse's message


def test_unexpected_failures_exit_3_and_interrupts_130(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def bug(args: object) -> int:
        raise RuntimeError("a bug")

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_explain", bug)
    assert cli.main(["explain", "x.py"]) == cli.INTERNAL
    err = capsys.readouterr().err
    assert "RuntimeError: a bug" in err and "internal error" in err
    monkeypatch.setattr(cli, "cmd_explain", interrupted)
    assert cli.main(["explain", "x.py"]) == 130
    assert cli.main([]) == 2  # no command: the help, on stderr
    assert "usage: relplan" in capsys.readouterr().err
