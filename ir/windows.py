"""Durations, per-row frames over event time, and time windows (tumble/hop).

Time is counted in integer microseconds so that window edges are exact.

The window-edge convention (one for every backend and the reference executor):
the sliding window of length w ending at t holds the events with
``t - w < event_time <= t``: an event exactly w before t is outside, an event at
exactly t (including every other event tied with t) is inside. Tumbling and
hopping windows are half-open ``[start, start + size)``, aligned to the Unix
epoch, so an event exactly at a window's end belongs to the next window.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from relplan.ir.errors import WindowError

US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
US["w"] = 7 * US["d"]
_UNIT_ALIASES = {
    "min": "m", "mins": "m", "minute": "m", "minutes": "m", "sec": "s", "secs": "s",
    "second": "s", "seconds": "s", "hour": "h", "hours": "h", "hr": "h", "day": "d", "days": "d",
    "week": "w", "weeks": "w", "millisecond": "ms", "milliseconds": "ms", "microsecond": "us",
    "microseconds": "us",
}
_DURATION = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")


def parse_duration(value: str | dt.timedelta | int, *, what: str = "window size") -> int:
    """A positive duration in microseconds from "1h", "30m", "7d", "500ms" or a timedelta."""
    if isinstance(value, dt.timedelta):
        us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    elif isinstance(value, str):
        total = 0
        # A leading minus is read so that "-1h" is reported as not positive, not as unreadable.
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        text = text[1:] if sign < 0 else text
        parts = re.findall(r"\d+\s*[a-zA-Z]+", text)
        if not parts or "".join(parts).replace(" ", "") != text.replace(" ", ""):
            raise WindowError(
                f"cannot parse {what} {value!r}; write a number and a unit, like '30s', '15m', '1h', '7d'"
            )
        for part in parts:
            m = _DURATION.match(part.lower())
            assert m is not None
            unit = _UNIT_ALIASES.get(m.group(2), m.group(2))
            if unit not in US:
                raise WindowError(
                    f"unknown unit {m.group(2)!r} in {what} {value!r}; use us, ms, s, m, h, d or w"
                )
            total += int(m.group(1)) * US[unit]
        us = sign * total
    elif isinstance(value, int) and not isinstance(value, bool):
        us = value
    else:
        raise WindowError(f"{what} must be a string like '1h' or a timedelta, got {value!r}")
    if us <= 0:
        raise WindowError(f"{what} must be positive, got {value!r}")
    return us


def format_duration(us: int) -> str:
    """The shortest exact label in units up to days: 3_600_000_000 -> '1h', 5_400_000_000 -> '90m'."""
    for unit in ("d", "h", "m", "s", "ms", "us"):
        if us % US[unit] == 0:
            return f"{us // US[unit]}{unit}"
    return f"{us}us"


@dataclass(frozen=True, slots=True)
class Frame:
    """A per-row frame over event time: rows with ``t - lower <(=) ts <(=) t - upper``.

    ``lower=None`` is unbounded (lifetime). The default edges are the relplan
    convention: lower bound exclusive, upper bound (the current time) inclusive.

    ``tile`` is a physical choice, not a meaning: compute the frame from partial
    aggregates over epoch-aligned tiles of this many microseconds plus the raw rows
    of the frame's partial head and tail tiles (set by the ``tile_long_windows``
    rule; engines without a tiled lowering compute the frame directly). Only a
    sliding frame ``(t - lower, t]`` whose length is a multiple of the tile is tiled.
    """

    lower: int | None
    lower_inclusive: bool = False
    upper: int = 0
    upper_inclusive: bool = True
    tile: int | None = None

    def __post_init__(self) -> None:
        if self.lower is not None and self.lower <= self.upper:
            raise WindowError(f"frame lower offset {self.lower}us must exceed upper offset {self.upper}us")
        if self.tile is not None and not (self.is_sliding and self.tile > 0 and self.lower % self.tile == 0):  # type: ignore[operator]
            raise WindowError(f"only a sliding frame (t-w, t] with w a multiple of the tile can be tiled: {self!r}")

    @property
    def is_sliding(self) -> bool:
        """The frame ``(t - lower, t]`` (the sliding window of the DSL)."""
        return self.lower is not None and not self.lower_inclusive and self.upper == 0 and self.upper_inclusive

    def describe(self) -> str:
        lo = "-inf" if self.lower is None else f"t-{format_duration(self.lower)}"
        hi = "t" if self.upper == 0 else f"t-{format_duration(self.upper)}"
        left = "[" if self.lower_inclusive and self.lower is not None else "("
        right = "]" if self.upper_inclusive else ")"
        tiles = "" if self.tile is None else f" tiles={format_duration(self.tile)}"
        return f"{left}{lo}, {hi}{right}{tiles}"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Tumbling (slide == size) or hopping windows ``[start, start + size)``."""

    size: int
    slide: int

    def __post_init__(self) -> None:
        if self.size <= 0 or self.slide <= 0:
            raise WindowError("window size and slide must be positive")
        if self.slide > self.size:
            raise WindowError(
                f"hop slide {format_duration(self.slide)} is larger than its size "
                f"{format_duration(self.size)}: events between windows would be lost"
            )

    @property
    def is_tumbling(self) -> bool:
        return self.slide == self.size

    def describe(self) -> str:
        if self.is_tumbling:
            return f"tumble {format_duration(self.size)}"
        return f"hop {format_duration(self.size)} every {format_duration(self.slide)}"
