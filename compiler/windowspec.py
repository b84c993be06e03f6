"""Window specifications of the feature DSL: sliding, lifetime, tumbling, hopping.

Sliding and lifetime windows give a per-event feature (its value at every event
of the source); tumbling and hopping windows give one row per key and window.
The edge convention is in :mod:`relplan.ir.windows`: a sliding window of length
w at time t holds events with ``t - w < ts <= t``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from relplan.compiler.location import user_facing
from relplan.ir.windows import Frame, TimeWindow, format_duration, parse_duration


@dataclass(frozen=True)
class WindowSpec:
    """Where and how a feature is windowed; build it with sliding/lifetime/tumbling/hopping."""

    kind: str
    size: int | None = None
    slide: int | None = None

    @property
    def per_event(self) -> bool:
        return self.kind in ("sliding", "lifetime")

    @property
    def label(self) -> str:
        """Part of a feature's default name: '1h', 'lifetime', 'tumble_1d', 'hop_1h_10m'."""
        if self.kind == "sliding":
            return format_duration(self.size)  # type: ignore[arg-type]
        if self.kind == "lifetime":
            return "lifetime"
        if self.kind == "tumbling":
            return f"tumble_{format_duration(self.size)}"  # type: ignore[arg-type]
        return f"hop_{format_duration(self.size)}_{format_duration(self.slide)}"  # type: ignore[arg-type]

    def frame(self) -> Frame:
        return Frame(lower=self.size if self.kind == "sliding" else None)

    def time_window(self) -> TimeWindow:
        return TimeWindow(self.size, self.slide)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        if self.kind == "lifetime":
            return "rp.lifetime()"
        if self.kind == "hopping":
            return f"rp.hopping({format_duration(self.size)!r}, {format_duration(self.slide)!r})"  # type: ignore[arg-type]
        return f"rp.{self.kind}({format_duration(self.size)!r})"  # type: ignore[arg-type]


Duration = str | dt.timedelta


@user_facing
def sliding(size: Duration) -> WindowSpec:
    """Per event: the aggregate over the ``size`` before each event, ``(t - size, t]``."""
    return WindowSpec("sliding", parse_duration(size, what="sliding window size"))


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
