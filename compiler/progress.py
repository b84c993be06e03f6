"""Progress on long work (bars drawn by tqdm) and what relplan runs (the ``logging`` module).

Progress
--------
Training data (``rp.pitc_join_features``), ``rp.execute`` / ``rp.execute_all``, the
online store's ``materialize`` and the benchmarks show a bar while they work, on a
terminal only::

    relplan training data:  50%|█████     | 2/4 [00:07, running on duckdb: query training_data]

Whether a bar is shown, the first answer that applies:

1. the call's own ``progress=`` (``True``: shown, ``False``: silent);
2. ``rp.set_progress(True / False)`` (the same as setting ``relplan.progress.enabled``;
   ``rp.set_progress(None)`` goes back to the default below);
3. the environment variable ``RELPLAN_PROGRESS``: ``1`` shows bars even where stderr is
   no terminal (a notebook: there the bar is a widget where ipywidgets is installed),
   ``0`` silences them;
4. shown if stderr is a terminal, silent otherwise (a pipe, a file, CI's log).

Short work never draws a bar: one appears once the work has taken ``DELAY`` seconds, so
a fast call prints nothing. Until then nothing of tqdm runs: a call pays about a
microsecond for its bookkeeping (a few hundred nanoseconds with progress off), and tqdm is
imported only when a first bar is drawn. Bars are drawn by one background thread, which
refreshes them every ``TICK`` seconds (the elapsed time keeps moving during a long engine
query) and sleeps while no work is running.

Logging
-------
relplan logs through loggers under ``"relplan"`` and prints nothing by default (a
``NullHandler`` on ``"relplan"``; no handler or level of the application's is touched):

- ``relplan.execute``, ``relplan.pitc``, ``relplan.serving``: one INFO line per
  top-level call (what ran, on which engine, rows, total time);
- ``relplan.engine.duckdb`` / ``.spark`` / ``.flink``: at DEBUG, each statement relplan
  runs, its SQL text and its time in ms, and the time to fetch the results.

To see them::

    import logging
    logging.basicConfig()                                    # a handler, once, in your application
    logging.getLogger("relplan").setLevel(logging.DEBUG)     # or INFO: one line per call

With the loggers off (the default) a call pays one ``isEnabledFor`` check per logger.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from relplan.ir.errors import RelplanError

logging.getLogger("relplan").addHandler(logging.NullHandler())

X = TypeVar("X")

ENV = "RELPLAN_PROGRESS"
DELAY = 0.75  # seconds of work before a bar appears
TICK = 0.25  # seconds between two refreshes of a shown bar

#: ``True``: bars shown (even without a terminal); ``False``: never; ``None``: the default
#: (``RELPLAN_PROGRESS``, else whether stderr is a terminal). Set by ``set_progress``.
enabled: bool | None = None

_ON = frozenset({"1", "true", "yes", "on"})
_OFF_VALUES = frozenset({"0", "false", "no", "off"})


def set_progress(on: bool | None = True) -> None:
    """Progress bars on (``True``: even where stderr is no terminal, e.g. a notebook),
    off (``False``), or back to the default (``None``: ``RELPLAN_PROGRESS`` if set, else
    shown on a terminal only). A call's ``progress=`` argument still decides for that call."""
    global enabled
    if on is not None and not isinstance(on, bool):
        raise RelplanError(f"set_progress() takes True, False or None, got {on!r}")
    enabled = on


def progress_enabled(override: bool | None = None) -> bool:
    """Whether long work started now shows a bar (see the module docstring for the order)."""
    if override is not None:
        if not isinstance(override, bool):
            raise RelplanError(f"progress= takes True, False or None (the default), got {override!r}")
        return override
    if enabled is not None:
        return bool(enabled)
    env = os.environ.get(ENV)
    if env:
        value = env.strip().lower()
        if value in _ON:
            return True
        if value in _OFF_VALUES:
            return False
    return _is_terminal(sys.stderr)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # noqa: BLE001 - None (pythonw), closed, or a stand-in without isatty
        return False


# ---- work and its bar ------------------------------------------------------------------


class Task:
    """One piece of long work: named steps (``step``) or counted units (``update``),
    with a detail the engine reports (``note``). Shown as a bar once it has taken
    ``DELAY`` seconds; a context manager (entering registers it, leaving closes its bar)."""

    __slots__ = ("desc", "total", "unit", "n", "_steps", "_step", "_detail", "_leave", "_file", "_start",
                 "_bar", "_token", "_current", "_broken")

    def __init__(self, desc: str, total: int | None, unit: str, leave: bool | None, steps: bool, current: bool) -> None:
        self.desc = desc
        self.total = total
        self.unit = unit
        self.n = 0
        self._steps = steps
        self._step: str | None = None
        self._detail: str | None = None
        self._leave = leave
        self._file = sys.stderr  # where the bar goes: the stream of the moment the work started
        self._start = time.monotonic()
        self._bar: Any = None
        self._token: contextvars.Token[Task | None] | None = None
        self._current = current
        self._broken = False

    def step(self, name: str) -> None:
        """The next step starts (the one before it is done)."""
        if self._step is not None:
            self.n += 1
        self._step = name
        self._detail = None

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.n += n

    def note(self, text: str | None) -> None:
        """What the current step is doing now (an engine's statement, fetching, ...)."""
        self._detail = text

    def __enter__(self) -> Task:
        if self._current:
            self._token = _CURRENT.set(self)
        _add(self)
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        if kind is None:
            if self._step is not None:  # the last step is done too
                self.n += 1
                self._step = None
            self._detail = None
        _remove(self)

    # -- drawing (the ticker thread, or closing; always under _COND) --------------------

    def _postfix(self) -> str:
        if self._step is None:
            return self._detail or ""
        return self._step if not self._detail else f"{self._step}: {self._detail}"

    def _show(self, now: float) -> None:
        if self._broken:
            return
        try:
            bar = self._bar
            if bar is None:
                top = not any(t._bar is not None for t in _ACTIVE if t is not self)
                bar = self._bar = _new_bar(self, leave=top if self._leave is None else self._leave)
                bar.start_t -= now - self._start  # its clock from when the work started, not from now
            bar.n = self.n
            bar.set_postfix_str(self._postfix(), refresh=False)
            bar.refresh()
        except Exception:  # noqa: BLE001 - a bar must never break the work (a closed stream, ...)
            self._broken = True

    def _close(self) -> None:
        if self._bar is None and not self._broken and time.monotonic() - self._start >= DELAY:
            self._show(time.monotonic())  # work the ticker had no time to draw: its final state
        bar, self._bar = self._bar, None
        if bar is not None:
            try:
                if not self._broken:
                    bar.n = self.n
                    bar.set_postfix_str(self._postfix(), refresh=False)
                bar.close()
            except Exception:  # noqa: BLE001
                pass


class _Off:
    """The work's stand-in when progress is off: every method does nothing."""

    __slots__ = ()
    n = 0

    def step(self, name: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def note(self, text: str | None) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        return None


OFF = _Off()

_CURRENT: contextvars.ContextVar[Task | None] = contextvars.ContextVar("relplan_progress", default=None)


def task(
    desc: str, total: int | None = None, *, unit: str = "step", progress: bool | None = None, leave: bool | None = None
) -> Task | _Off:
    """A piece of long work, as a context manager::

        with progress.task("training data", total=3, progress=progress) as work:
            work.step("planning"); ...
            work.step("running on duckdb"); ...      # engines add details: work.note(...)

    ``unit="step"``: ``total`` named steps (``step(name)``); any other unit counts
    (``update(n)``). ``progress``: the call's own setting (None: the default). ``leave``:
    keep the bar on screen when done (default: for the outermost bar only). Off, it
    returns ``OFF``, whose methods do nothing."""
    if not progress_enabled(progress):
        return OFF
    return Task(desc, total, unit, leave, steps=unit == "step", current=True)


def track(
    items: Iterable[X], desc: str, *, total: int | None = None, unit: str = "it", progress: bool | None = None,
    leave: bool | None = None,
) -> Iterable[X]:
    """``items`` with a bar counting them (off: ``items`` itself, nothing added)."""
    if not progress_enabled(progress):
        return items
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    return _tracked(items, Task(desc, total, unit, leave, steps=False, current=False))


def _tracked(items: Iterable[X], work: Task) -> Iterator[X]:
    with work:
        for item in items:
            yield item
            work.update()


def current() -> Task | _Off:
    """The innermost work running in this context (``OFF`` when none is shown)."""
    work = _CURRENT.get()
    return OFF if work is None else work


def note(text: str | None) -> None:
    """A detail for the innermost work's bar (nothing when there is none)."""
    work = _CURRENT.get()
    if work is not None:
        work._detail = text


# ---- the thread that draws ----------------------------------------------------------------

_COND = threading.Condition()
_ACTIVE: list[Task] = []
_THREAD: threading.Thread | None = None
_IDLE = False  # the thread waits without a timeout: a new task must wake it


def _add(work: Task) -> None:
    global _THREAD
    with _COND:
        _ACTIVE.append(work)
        if _THREAD is None:
            _THREAD = threading.Thread(target=_loop, name="relplan-progress", daemon=True)
            _THREAD.start()
        elif _IDLE:
            _COND.notify()


def _remove(work: Task) -> None:
    with _COND:
        try:
            _ACTIVE.remove(work)
        except ValueError:
            pass
        work._close()


def _loop() -> None:
    global _IDLE
    with _COND:
        while True:
            if not _ACTIVE:
                _IDLE = True
                _COND.wait()
                _IDLE = False
                continue
            now = time.monotonic()
            wait = TICK
            for work in list(_ACTIVE):
                due = work._start + DELAY - now
                if due <= 0:
                    work._show(now)
                else:
                    wait = min(wait, due)
            _COND.wait(max(wait, 0.01))


def _after_fork_in_child() -> None:
    # The thread is not in the child; the lock may have been held by it at the fork.
    global _COND, _THREAD, _IDLE
    _COND = threading.Condition()
    _THREAD = None
    _IDLE = False
    _ACTIVE.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


_BAR_CLASS: Any = None
_STEP_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def _new_bar(work: Task, leave: bool) -> Any:
    cls = _bar_class()
    kwargs: dict[str, Any] = {
        "total": work.total, "desc": f"relplan {work.desc}", "unit": work.unit, "leave": leave,
        "file": work._file, "mininterval": 0, "dynamic_ncols": True,
    }
    if work._steps:
        kwargs["bar_format"] = _STEP_FORMAT if work.total else "{desc}: [{elapsed}{postfix}]"
    return cls(**kwargs)


def _bar_class() -> Any:
    """tqdm's bar (its notebook widget inside a Jupyter kernel with ipywidgets), without
    tqdm's own monitor thread (the thread here refreshes)."""
    global _BAR_CLASS
    if _BAR_CLASS is None:
        import importlib

        base: Any = None
        if _in_notebook():
            try:
                importlib.import_module("ipywidgets")  # tqdm's widget needs it
                base = importlib.import_module("tqdm.notebook").tqdm
            except ImportError:
                base = None
        if base is None:
            base = importlib.import_module("tqdm.std").tqdm
        _BAR_CLASS = type("RelplanBar", (base,), {"monitor_interval": 0})
    return _BAR_CLASS


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
        return ip is not None and "IPKernelApp" in ip.config
    except Exception:  # noqa: BLE001
        return False


# ---- steps, shown and logged --------------------------------------------------------------


class Steps:
    """Named steps of a top-level call: a bar (``task``) and, where its logger is on, each
    step's time: at DEBUG one line per step as it ends; ``times`` and ``breakdown()`` for
    the call's one INFO line::

        with progress.Steps("training data", 4, log, progress=progress) as steps:
            steps.step("planning"); ...
        if steps.logged:
            log.info("training data: ... in %.1f ms (%s)", steps.elapsed_ms, steps.breakdown())
    """

    __slots__ = ("work", "desc", "log", "logged", "debug", "times", "_name", "_t", "_started", "_ended")

    def __init__(
        self, desc: str, total: int | None, log: logging.Logger, *, progress: bool | None = None, leave: bool | None = None
    ) -> None:
        self.work = task(desc, total, progress=progress, leave=leave)
        self.desc = desc
        self.log = log
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.logged = self.debug or log.isEnabledFor(logging.INFO)
        self.times: dict[str, float] = {}
        self._name: str | None = None
        self._t = self._started = time.perf_counter() if self.logged else 0.0
        self._ended = 0.0

    @property
    def shown(self) -> bool:
        """Whether the work may get a bar (progress is on for it): an engine's ``on_step`` goes to ``note``."""
        return self.work is not OFF

    def step(self, name: str) -> None:
        self.work.step(name)
        if self.logged:
            self._end()
            self._name = name
            self._t = time.perf_counter()

    def note(self, text: str | None) -> None:
        self.work.note(text)

    def _end(self) -> None:
        if self._name is not None:
            self._ended = time.perf_counter()
            took = self._ended - self._t
            self.times[self._name] = self.times.get(self._name, 0.0) + took
            if self.debug:
                self.log.debug("%s: %s in %.1f ms", self.desc, self._name, took * 1e3)
            self._name = None

    @property
    def elapsed_ms(self) -> float:
        end = self._ended if self._name is None and self._ended else time.perf_counter()
        return (end - self._started) * 1e3

    def breakdown(self) -> str:
        return ", ".join(f"{name} {secs * 1e3:.1f} ms" for name, secs in self.times.items())

    def __enter__(self) -> Steps:
        self.work.__enter__()
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if self.logged:
            self._end()
        self.work.__exit__(kind, value, tb)


def logger(name: str) -> logging.Logger:
    """relplan's logger ``relplan.<name>``."""
    return logging.getLogger(f"relplan.{name}")
