"""What the engines that run on a JVM (Spark, Flink) have in common."""

from __future__ import annotations


def java_root_message(e: BaseException) -> str | None:
    """The message of the innermost cause (with a message) of a Py4J Java exception:
    the engine's own words, which a failed task wraps two or three times. None when
    ``e`` carries no Java exception, or the JVM is gone."""
    cause = getattr(e, "java_exception", None)
    root = None
    try:
        while cause is not None:
            message = cause.getMessage()
            root = message if message else root
            cause = cause.getCause()
    except Exception:  # noqa: BLE001 - the JVM may be gone; the caller falls back to the Python text
        pass
    return root
