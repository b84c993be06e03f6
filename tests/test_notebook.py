"""The example notebook examples/first_look.ipynb: executed here (nbclient, in a kernel
running this very interpreter), its plan, placement and deployment cells draw
themselves as SVG; and the page it renders to, opened in headless Chromium, shows them.

nbclient and ipykernel come with the ``notebook`` extra, Graphviz's ``dot`` (which the
notebook's ``visualize()`` cells need) and Chromium from Debian's packages (.ci/run
installs them): in CI (``CI`` set) a missing one fails these tests, elsewhere it skips
them with the way to install it. Without ``dot`` the reprs fall back to text: that is
tests/test_visualize.py's to check.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import relplan
from relplan.ir import dot as dotmod

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "first_look.ipynb"
# The cells that end with a plan, a placement or a deployment, and a label each draws.
PICTURES = {
    "plan": "WindowAggregate",
    "optimized.visualize(before=plan)": "added by share_windows",
    "optimized.visualize(statistics=statistics)": "rows ≈ 10M",
    "placed.placement": "ruled out by max_missed",
    "deployment": "streaming on flink, continuous",
}
WIDTH, HEIGHT = 1200, 2000


def missing(what: str) -> None:
    """Fail in CI (which installs everything), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI installs it (.ci/run, ./dev test)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    try:
        import nbformat
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager
        from nbclient import NotebookClient
    except ImportError as e:
        missing(f"the notebook tests need nbclient, nbformat and ipykernel (pip install 'relplan[notebook]'): {e}")
    if shutil.which("dot") is None:  # the notebook's visualize() cells need it
        missing("Graphviz's dot is not installed (apt-get install graphviz): the notebook draws its plans with it")
    # A kernel spec of our own, in a folder of our own: the kernel is this interpreter,
    # whatever kernels (a "python3" of another Python) the machine has installed.
    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / "relplan-test").mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "relplan-test" / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "relplan test", "language": "python"}))
    km = KernelManager(kernel_name="relplan-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False))
    nb = nbformat.read(EXAMPLE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys, relplan\nprint(sys.executable)\nprint(relplan.__file__)"))
    NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": str(EXAMPLE.parent)}}).execute()
    return nb


def outputs(nb: Any, source: str) -> list[dict[str, Any]]:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.rstrip().splitlines()[-1] == source]
    return cell.outputs  # type: ignore[no-any-return]


def test_the_notebook_runs_in_this_interpreter_and_draws_its_plans(executed: Any) -> None:
    for cell in executed.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None
            assert [o for o in cell.outputs if o.output_type == "error"] == [], cell.source
    (printed,) = outputs(executed, "print(relplan.__file__)")
    executable, package = printed["text"].split()
    assert Path(executable) == Path(sys.executable) and Path(package) == Path(relplan.__file__)  # the relplan under test
    # The per-event results came back as a table.
    (table,) = outputs(executed, 'rp.execute(plan, engine="duckdb", tables=tables, output="Transactions").to_pandas().tail()')
    assert "failed_count_1h" in table["data"]["text/html"] and "mean_amount_7d" in table["data"]["text/html"]
    for source, label in PICTURES.items():
        (out,) = outputs(executed, source)
        svg = out["data"]["image/svg+xml"]
        text = " ".join(t.text or "" for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"))
        assert label in text, (source, label)


# ---- the page, in a browser ----------------------------------------------------------------------------
def notebook_html(nb: Any) -> str:
    """A self-contained page of the executed notebook: markdown as paragraphs, code, and
    each output in its richest form (SVG inline, HTML, else text)."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for block in cell.source.split("\n\n"):
                text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(block))
                heading = re.match(r"(#+) (.*)", text, re.S)
                parts.append(f"<h{len(heading[1])}>{heading[2]}</h{len(heading[1])}>" if heading else f"<p>{text}</p>")
            continue
        parts.append(f'<pre class="code">{html.escape(cell.source)}</pre>')
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/svg+xml" in data:
                parts.append(dotmod.inline_svg(data["image/svg+xml"]))
            elif "text/html" in data:
                parts.append(f'<div class="html">{data["text/html"]}</div>')
            elif "text/plain" in data or out.output_type == "stream":
                parts.append(f'<pre class="out">{html.escape(data.get("text/plain") or out.get("text", ""))}</pre>')
    style = "body{font-family:sans-serif;margin:24px} pre.code{background:#f7f7f7;padding:8px} svg{max-width:100%;height:auto}"
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{style}</style></head><body>{"".join(parts)}</body></html>'


def read_png(path: Path) -> np.ndarray:
    """The RGB pixels of an 8-bit, non-interlaced RGB(A) PNG (what Chromium writes):
    chunks, zlib and the five row filters, with the standard library and numpy."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert depth == 8 and interlace == 0 and ctype in (2, 6), (depth, ctype, interlace)
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int64)
    for y in range(h):
        kind_, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind_ == 0:
            cur = line
        elif kind_ == 1:  # Sub: a running sum along the row, per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) & 255
        elif kind_ == 2:  # Up
            cur = (line + prev) & 255
        else:  # Average, Paeth: pixel by pixel
            f, b, c_ = line.tolist(), prev.tolist(), [0] * stride
            for x in range(stride):
                a = c_[x - bpp] if x >= bpp else 0
                if kind_ == 3:
                    p = (a + b[x]) >> 1
                else:
                    c = b[x - bpp] if x >= bpp else 0
                    pa, pb, pc = abs(b[x] - c), abs(a - c), abs(a + b[x] - 2 * c)
                    p = a if pa <= pb and pa <= pc else b[x] if pb <= pc else c
                c_[x] = (f[x] + p) & 255
            cur = np.array(c_, np.int64)
        out[y], prev = cur, cur
    return out.reshape(h, w, bpp)[:, :, :3]


def screenshot(browser: str, page: Path, png: Path, profile: Path) -> np.ndarray:
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return read_png(png)


@pytest.mark.browser
def test_browser_shows_the_rendered_notebook(executed: Any, tmp_path: Path) -> None:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        missing("Chromium is not installed (apt-get install chromium)")
    page, blank = tmp_path / "first_look.html", tmp_path / "blank.html"
    page.write_text(notebook_html(executed), encoding="utf-8")
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    empty = screenshot(browser, blank, tmp_path / "blank.png", tmp_path / "profile")  # type: ignore[arg-type]
    shown = screenshot(browser, page, tmp_path / "first_look.png", tmp_path / "profile")  # type: ignore[arg-type]
    assert empty.shape == shown.shape == (HEIGHT, WIDTH, 3)
    white = lambda px: (px == 255).all(axis=2).mean()  # noqa: E731
    assert white(empty) > 0.999  # the blank page is blank...
    assert white(shown) < 0.9  # ...the notebook's is not,
    assert len(np.unique(shown.reshape(-1, 3)[::5], axis=0)) > 50  # and holds text and colour;
    assert (tmp_path / "first_look.png").stat().st_size > 5 * (tmp_path / "blank.png").stat().st_size
    # the plan's picture is drawn: its output boxes are filled with their colour.
    sink = np.array([int(dotmod.SINK_FILL[i : i + 2], 16) for i in (1, 3, 5)], np.uint8)
    assert (shown == sink).all(axis=2).sum() > 2_000
    assert (empty == sink).all(axis=2).sum() == 0
