"""Window specifications of the feature DSL: sliding, lifetime, tumbling, hopping.

Sliding and lifetime windows give a per-event feature (its value at every event
of the source); tumbling and hopping windows give one row per key and window.
The edge convention is in :mod:`relplan.ir.windows`: a sliding window of length
w at time t holds events with ``t - w < ts <= t``; ``closed="both"`` (pandas' name)
also holds the event exactly w earlier, ``t - w <= ts <= t``, which is what SQL's
``RANGE BETWEEN INTERVAL w PRECEDING AND CURRENT ROW`` means.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from relplan.compiler.location import user_facing
from relplan.ir.errors import WindowError
from relplan.ir.windows import Frame, TimeWindow, format_duration, parse_duration

#: The window edges a sliding window may have (pandas' rolling ``closed``): "right" is
#: ``(t - w, t]``, relplan's convention; "both" is ``[t - w, t]``, SQL's RANGE frame.
CLOSED = ("right", "both")


@dataclass(frozen=True)
class WindowSpec:
    """Where and how a feature is windowed; build it with sliding/lifetime/tumbling/hopping."""

    kind: str
    size: int | None = None
    slide: int | None = None
    # Which edges a sliding window holds: "right" (t - w, t] or "both" [t - w, t].
    closed: str = "right"

    def __post_init__(self) -> None:
        if self.closed not in CLOSED:
            raise WindowError(f"closed={self.closed!r} is not a window edge relplan reads; use {' or '.join(map(repr, CLOSED))}")
        if self.closed != "right" and self.kind != "sliding":
            raise WindowError(f"closed={self.closed!r} applies to sliding windows only, not to a {self.kind} window")

    @property
    def lower_inclusive(self) -> bool:
        """Whether an event exactly ``size`` before t is inside (closed="both")."""
        return self.closed == "both"

    @property
    def per_event(self) -> bool:
        return self.kind in ("sliding", "lifetime")

    @property
    def label(self) -> str:
        """Part of a feature's default name: '1h', '1h_both', 'lifetime', 'tumble_1d', 'hop_1h_10m'."""
        if self.kind == "sliding":
            both = "_both" if self.closed == "both" else ""
            return f"{format_duration(self.size)}{both}"  # type: ignore[arg-type]
        if self.kind == "lifetime":
            return "lifetime"
        if self.kind == "tumbling":
            return f"tumble_{format_duration(self.size)}"  # type: ignore[arg-type]
        return f"hop_{format_duration(self.size)}_{format_duration(self.slide)}"  # type: ignore[arg-type]

    def frame(self) -> Frame:
        if self.kind != "sliding":
            return Frame(lower=None)
        return Frame(lower=self.size, lower_inclusive=self.closed == "both")

    def time_window(self) -> TimeWindow:
        return TimeWindow(self.size, self.slide)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        if self.kind == "lifetime":
            return "rp.lifetime()"
        if self.kind == "hopping":
            return f"rp.hopping({format_duration(self.size)!r}, {format_duration(self.slide)!r})"  # type: ignore[arg-type]
        closed = f", closed={self.closed!r}" if self.closed != "right" else ""
        return f"rp.{self.kind}({format_duration(self.size)!r}{closed})"  # type: ignore[arg-type]


Duration = str | dt.timedelta


@user_facing
def sliding(size: Duration, closed: Literal["right", "both"] = "right") -> WindowSpec:
    """Per event: the aggregate over the ``size`` before each event, ``(t - size, t]``.

    ``closed="both"`` (as pandas' ``rolling(closed=)``) also counts the event exactly
    ``size`` earlier, ``[t - size, t]``: the meaning of SQL's
    ``RANGE BETWEEN INTERVAL size PRECEDING AND CURRENT ROW``."""
    if closed not in CLOSED:
        raise WindowError(
            f"sliding(closed={closed!r}): use {' or '.join(map(repr, CLOSED))}; a window always holds the "
            "event at t itself, so 'left' and 'neither' are not window edges relplan reads"
        )
    return WindowSpec("sliding", parse_duration(size, what="sliding window size"), closed=closed)


@user_facing
def lifetime() -> WindowSpec:
    """Per event: the aggregate over every earlier event and the event itself, ``(-inf, t]``."""
    return WindowSpec("lifetime")


@user_facing
def tumbling(size: Duration) -> WindowSpec:
    """Per window: one row per key and ``[start, start + size)``, aligned to the epoch."""
    us = parse_duration(size, what="tumbling window size")
    return WindowSpec("tumbling", us, us)


@user_facing
def hopping(size: Duration, slide: Duration) -> WindowSpec:
    """Per window: windows of ``size`` starting every ``slide`` (each event in size/slide windows)."""
    s = parse_duration(size, what="hopping window size")
    h = parse_duration(slide, what="hopping window slide")
    TimeWindow(s, h)  # validates slide <= size
    return WindowSpec("hopping", s, h)
