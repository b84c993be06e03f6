"""Finding the user's line: errors name the line of the @transformation they come from."""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Callable
from functools import wraps
from types import FrameType
from typing import Any, TypeVar

from relplan.ir.errors import RelplanError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL = tuple(os.path.join(_ROOT, d) + os.sep for d in ("compiler", "ir", "rules", "backends")) + (
    os.path.join(_ROOT, "__init__.py"),
)


def is_internal(filename: str) -> bool:
    """Whether ``filename`` is relplan's own code (not the user's)."""
    fname = os.path.abspath(filename)
    return fname.startswith(_INTERNAL) or fname == _INTERNAL[-1]


def describe_frame(frame: FrameType, lineno: int) -> str:
    """``file:line in function: source`` of a frame at ``lineno``."""
    text = linecache.getline(frame.f_code.co_filename, lineno).strip()
    where = f"{os.path.basename(frame.f_code.co_filename)}:{lineno} in {frame.f_code.co_name}"
    return f"{where}: {text}" if text else where


def user_location() -> str | None:
    """``file:line in function: source`` of the innermost caller outside relplan."""
    frame = sys._getframe(1)
    while frame is not None:
        if not is_internal(frame.f_code.co_filename):
            return describe_frame(frame, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return None


class located:  # noqa: N801 - used like a function: ``with located():``
    """Attach the user's line to any RelplanError raised inside.

    A class, not a ``@contextmanager`` generator: a generator's exit runs under
    ``contextlib.__exit__``, which is outside relplan, so the user's line would be
    found in contextlib instead of in the caller of the ``with`` block.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, RelplanError) and exc.where is None:
            raise exc.at(user_location()) from None


F = TypeVar("F", bound=Callable[..., Any])


def user_facing(fn: F) -> F:
    """Decorator form of :func:`located` for DSL methods."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with located():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
