"""The docs run as written: README.md and every page under docs/.

The rules a page follows (and that these tests enforce):

- Every ```` ```python ```` block runs. The blocks of one page run in order in one
  namespace (a page builds up: a later block uses what an earlier one defined), in a
  fresh temporary directory as the working directory. Tracebacks name the page and its
  line.
- A block that cannot run here is marked on its fence, with the reason:
  ```` ```python no-run: needs Spark and Flink; ... ````. Such exceptions stay few.
- An unlabelled ```` ``` ```` block is the printed output of the nearest ```` ```python ````
  block above it (only prose in between, no heading), and what that block prints must equal it:
  compared line by line with trailing spaces and blank lines at both ends ignored. A
  line that is only ``...`` stands for any number of lines, and ``...`` inside a line for
  any text. Text that is not output names its language (```` ```text ````,
  ```` ```bash ````, ```` ```sql ````).
- Relative links (``[text](path#anchor)``) point to files that exist and, with an
  anchor, to a heading of that file (GitHub's slugs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_CHARS = 12_000  # the rest belongs in docs/
MAX_NOT_RUN = 4  # blocks marked no-run, over all pages


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the block's first content line
    info: str  # the fence's info string: "python", "python no-run: why", "", "sql", ...
    text: str
    heading: str  # the nearest heading above it
    section: int  # that heading's line (0: none)

    @property
    def lang(self) -> str:
        return self.info.split(maxsplit=1)[0] if self.info else ""

    @property
    def runs(self) -> bool:
        return self.lang == "python" and not self.info.removeprefix("python").strip().startswith("no-run")

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"


def parse(page: Path) -> tuple[list[Block], list[tuple[int, str]], list[tuple[int, str]]]:
    """The fenced blocks of ``page``, its headings and its prose lines (both with line numbers)."""
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    prose: list[tuple[int, str]] = []
    lines = page.read_text().splitlines()
    heading, section = "", 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            assert line.startswith("```"), f"{rel(page)}:{i + 1}: fences start at the line's start"
            info, start, i = line[3:].strip(), i + 1, i + 1
            while i < len(lines) and lines[i] != "```":
                i += 1
            assert i < len(lines), f"{rel(page)}:{start}: a fence is never closed"
            blocks.append(Block(page, start + 1, info, "\n".join(lines[start:i]), heading, section))
        elif m := re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line):
            heading, section = m.group(2), i + 1
            headings.append((i + 1, heading))
        else:
            prose.append((i + 1, line))
        i += 1
    return blocks, headings, prose


def examples(page: Path) -> list[tuple[Block, Block | None]]:
    """Each python block of ``page`` with the output block that follows it, if any."""
    out: list[tuple[Block, Block | None]] = []
    previous: Block | None = None
    for block in parse(page)[0]:
        if block.lang == "python":
            out.append((block, None))
        elif block.info == "":
            assert previous is not None and previous.lang == "python" and previous.section == block.section, (
                f"{block.where}: an unlabelled block is the output of the python block just above it in its "
                "section; there is none: name its language (```text, ```bash, ...)"
            )
            assert previous.runs, f"{block.where}: the output of a block marked no-run cannot be checked"
            assert out[-1][1] is None, f"{block.where}: a second output block for {previous.where}"
            out[-1] = (previous, block)
        previous = block
    return out


def matches(printed: str, shown: str) -> bool:
    """``printed`` is ``shown``, where ``...`` stands for any lines (alone) or any text (in a line)."""
    def norm(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.splitlines()]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        return lines

    pattern = []
    for line in norm(shown):
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*".join(re.escape(part) for part in line.split("...")) + r"\n")
    return re.fullmatch("".join(pattern), "".join(line + "\n" for line in norm(printed))) is not None


# ---- every page's examples run and print what the page shows --------------------------------

# Pages without a Python example (performance.md: its figures come from ./dev bench) have nothing to run.
RUNNABLE_PAGES = [p for p in PAGES if any(b.runs for b, _ in examples(p))]


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=rel)
def test_the_pages_examples_run_and_print_what_it_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runnable = [(b, shown) for b, shown in examples(page) if b.runs]
    monkeypatch.chdir(tmp_path)  # files the examples write (a catalog, say) land here
    namespace: dict[str, object] = {"__name__": "__main__"}
    shown_options = ("display.width", "display.max_columns", "display.max_rows", "display.precision")
    with pd.option_context(*(x for o in shown_options for x in (o, pd.get_option(o)))):  # put back afterwards
        for block, shown in runnable:
            capsys.readouterr()
            code = "\n" * (block.line - 1) + block.text  # tracebacks give the page's own line numbers
            exec(compile(code, str(page), "exec"), namespace)  # noqa: S102 - the docs' own examples
            printed = capsys.readouterr().out
            if shown is not None:
                assert matches(printed, shown.text), (
                    f"{block.where} printed\n{printed}\nwhich is not what {shown.where} shows:\n{shown.text}"
                )


def test_the_output_checks_the_readme_had_are_still_checked() -> None:
    """Training data (its table and its plan), online serving and the catalog print what they show."""
    checked = {
        (rel(page), block.heading)
        for page in PAGES for block, shown in examples(page) if shown is not None and block.runs
    }
    for page, heading in [
        ("README.md", "Quickstart"),
        ("docs/training-data.md", "Training data: features as of each row's time"),
        ("docs/training-data.md", "How it is computed"),
        ("docs/online-serving.md", "Online serving: the same values at request time"),
        ("docs/catalog.md", "Catalog and guardrails: named, versioned features, and breaking changes stopped"),
        ("docs/placement.md", "Placement: where each feature runs, and why"),
    ]:
        assert (page, heading) in checked, f"{page}, {heading!r}: its example's output is no longer checked"


def test_blocks_not_run_are_few_and_say_why() -> None:
    not_run = [b for page in PAGES for b in parse(page)[0] if b.lang == "python" and not b.runs]
    for b in not_run:
        reason = b.info.removeprefix("python").strip().removeprefix("no-run").lstrip(":").strip()
        assert len(reason) > 10, f"{b.where}: say why it cannot run (```python no-run: <why>)"
    assert len(not_run) <= MAX_NOT_RUN, [b.where for b in not_run]


def test_matching_with_ellipses() -> None:
    assert matches("a\nb\n\n", "a\nb")
    assert matches("a\nb\nc\nd", "a\n...\nd") and matches("a\nd", "a\n...\nd")
    assert matches("x\ny\nz", "...\nz") and matches("x\ny\nz", "x\n...")
    assert matches("at api.md:12 in f", "at api.md:... in f")
    assert not matches("a\nb", "a\nc") and not matches("a\nb\nc", "a\nc") and not matches("a(b", "a.b")


# ---- links and the README's shape ------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, heading in parse(page)[1]:
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[tuple[int, str]]:
    """The link targets in ``page``'s prose and headings (code spans and fenced blocks excluded)."""
    _, headings, prose = parse(page)
    out = []
    for number, line in sorted(prose + headings):
        line = re.sub(r"`[^`]*`", "", line)
        out += [(number, target) for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line)]
    return out


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_resolve_to_files_and_headings(page: Path) -> None:
    broken = []
    for number, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{rel(page)}:{number}: {target}: no such file")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{rel(page)}:{number}: {target}: no heading #{anchor} in {rel(file)}")
    assert not broken, "\n".join(broken)


def test_the_slugs_are_githubs() -> None:
    assert slug("Training data: features as of each row's time") == "training-data-features-as-of-each-rows-time"
    assert slug("Where the engines differ by default, and what relplan emits") == (
        "where-the-engines-differ-by-default-and-what-relplan-emits")
    assert slug("`rp.latest` and first_value") == "rplatest-and-first_value"


def test_the_readme_is_short_and_leads_to_every_page() -> None:
    text = README.read_text()
    assert len(text) <= README_MAX_CHARS, f"README.md has {len(text)} characters: move detail to docs/"
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    for page in PAGES[1:]:
        assert page.resolve() in linked, f"README.md does not link to {rel(page)}"
        assert any(target.partition("#")[0] == "../README.md" for _, target in links(page)), (
            f"{rel(page)} has no link back to the README")


def test_the_readme_names_the_two_commands() -> None:
    blocks = [b for b in parse(README)[0] if b.heading == "The two commands" and b.lang == "bash"]
    commands = [line.split("#")[0].strip() for b in blocks for line in b.text.splitlines()]
    assert "./dev demo" in commands and "./dev test" in commands
