"""The README's training-data example runs as written and prints what the README shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa

import relplan as rp

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def blocks(text: str, lang: str = "") -> list[str]:
    """The fenced blocks of ``text`` whose fence names ``lang`` ("": unnamed ones)."""
    out: list[str] = []
    lines: list[str] = []
    inside = wanted = False
    for line in text.splitlines():
        if line.startswith("```"):
            if inside and wanted:
                out.append("\n".join(lines))
            inside, wanted, lines = not inside, line[3:].strip() == lang, []
        elif inside:
            lines.append(line)
    return out


def test_the_training_data_example_prints_what_the_readme_shows() -> None:
    text = section("## Training data")
    code, explain_call = blocks(text, "python")[:2]
    outputs = blocks(text)
    namespace = {"dt": dt, "pa": pa, "rp": rp}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        printed = namespace["train"].to_pandas().to_string()
    assert printed.strip() == outputs[0].strip()
    plan_text = eval(explain_call.strip().removeprefix("print(").removesuffix(")"), namespace)
    assert plan_text.strip() == outputs[1].strip()


def test_the_online_serving_example_prints_what_the_readme_shows(capsys: object) -> None:
    code = blocks(section("## Online serving"), "python")[0]
    shown = [line.strip()[2:] for line in code.splitlines() if line.strip().startswith("# [")]
    exec(compile(code, "README.md (Online serving)", "exec"), {})  # noqa: S102 - the README's own example
    printed = capsys.readouterr().out.strip().splitlines()  # type: ignore[attr-defined]
    assert printed == shown and shown


def test_the_catalog_example_prints_what_the_readme_shows(tmp_path: object, monkeypatch: object, capsys: object) -> None:
    text = section("## Catalog and guardrails")
    code = blocks(text, "python")[0]
    shown = blocks(text)[0]
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]  # the example's catalog file lands here
    exec(compile(code, "README.md (Catalog)", "exec"), {})  # noqa: S102 - the README's own example
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    assert printed.strip() == shown.strip()
