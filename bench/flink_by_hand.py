"""What a user running relplan's Flink script by hand does with files: the inputs
written as JSON lines by a plain ``json.dumps`` loop, the output's part files read
back with json. Shared by the Flink benches' by-hand sides."""

from __future__ import annotations

import json
import os

import pyarrow as pa


def write_json_lines(table: pa.Table, path: str, time: str = "ts") -> None:
    """``table`` as JSON lines at ``path``, its ``time`` column as Flink's timestamp text."""
    with open(path, "w", encoding="utf-8") as f:
        for row in table.to_pylist():
            row[time] = row[time].strftime("%Y-%m-%d %H:%M:%S.%f")
            f.write(json.dumps(row) + "\n")


def read_json_parts(directory: str) -> list[dict]:
    """The rows of every part file a filesystem sink wrote to ``directory``."""
    rows: list[dict] = []
    for name in sorted(os.listdir(directory)):
        if not name.startswith("."):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                rows += [json.loads(line) for line in f if line.strip()]
    return rows
