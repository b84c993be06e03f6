"""relplan's public API under a strict type check, as a data scientist's features module sees it.

One ``mypy --strict`` run (tests/typecheck/mypy.ini) over the user-style modules in
tests/typecheck/, relplan/demo.py and tests/typecheck/negative/mistakes.py: the first
ones must give no error, the last exactly the errors its ``# E: <code>`` comments mark
(so the check has teeth). The user-style modules are also run, so that what the checker
sees is what the code gets.

mypy finds relplan by name: the repository root is the package, and a clone's folder
may be called anything, so the run reads it through a folder holding a link
``relplan -> <repository>``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import relplan as rp

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tests" / "typecheck"
NEGATIVE = HERE / "negative"
USER_MODULES = sorted(p.stem for p in HERE.glob("*.py"))
ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*?)  \[(?P<code>[a-z-]+)\]$", re.MULTILINE)


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[re.Match[str]]]:
    pytest.importorskip("mypy", reason="mypy is in relplan's lint extra (./dev test installs it)")
    root = tmp_path_factory.mktemp("typecheck")
    (root / "relplan").symlink_to(REPO, target_is_directory=True)
    modules = ["relplan.demo", *USER_MODULES, "mistakes"]
    cmd = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(HERE / "mypy.ini"),
           "--cache-dir", str(root / "cache"), "--no-pretty", "--no-color-output", "--show-error-codes"]
    for m in modules:
        cmd += ["-m", m]
    env = {**os.environ, "MYPYPATH": os.pathsep.join(map(str, (root, HERE, NEGATIVE)))}
    done = subprocess.run(cmd, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    errors = list(ERROR.finditer(output))
    if done.returncode != 0 and not errors:  # 2: mypy could not run (bad config, module not found)
        pytest.fail(f"mypy did not run (exit {done.returncode}):\n{output}")
    return output, errors


def test_user_modules_and_the_demo_pass_mypy_strict(mypy_run: tuple[str, list[re.Match[str]]]) -> None:
    output, errors = mypy_run
    wrong = [e.group(0) for e in errors if Path(e["path"]).name != "mistakes.py"]
    assert USER_MODULES, "no user-style modules found in tests/typecheck"
    assert not wrong, "mypy --strict finds errors in code that uses relplan's API as documented:\n" + output


def test_mistakes_are_caught_exactly_where_marked(mypy_run: tuple[str, list[re.Match[str]]]) -> None:
    output, errors = mypy_run
    marked = set()
    for i, line in enumerate((NEGATIVE / "mistakes.py").read_text().splitlines(), 1):
        m = re.search(r"# E: ([a-z-]+(?:, *[a-z-]+)*)\s*$", line)
        if m:
            marked |= {(i, code.strip()) for code in m.group(1).split(",")}
    found = {(int(e["line"]), e["code"]) for e in errors if Path(e["path"]).name == "mistakes.py"}
    assert len(marked) >= 10
    assert found == marked, (
        f"not caught: {sorted(marked - found)}; not expected: {sorted(found - marked)}\n{output}"
    )


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"relplan_typecheck_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_user_modules_run_as_they_are_typed() -> None:
    features = _load("user_features")
    counts = features.run()
    assert counts["per_event"] == 7 and counts["result"] == 24 and counts["training"] == 2
    assert counts["pushed"] == 2 and counts["served"] == 1 and counts["outputs"] >= 1
    assert {f.name for f in features.features()} >= {"failed_count_1h", "big_spend_7d", "amount_usd_1d"}

    joins = _load("user_joins")
    assert joins.run() == {"Payments_MerchantVersions": 3, "Payments_Countries": 3, "Payments": 3}

    plain = _load("user_plain")
    # without `from __future__ import annotations` the annotations are the DataType values
    assert all(isinstance(t, rp.DataType) for t in plain.column_types)
    assert plain.Clicks.schema().dtype("dwell") == rp.Float64
    feature = plain.feature()
    assert isinstance(feature, rp.Feature) and feature.name == "long_dwell_pages_daily"
    assert rp.compile(feature).explain()


def test_version() -> None:
    assert rp.__version__ == importlib.metadata.version("relplan")
