"""The error hierarchy: everything relplan raises on bad input is a RelplanError.

Errors carry the user's own words (the column, the feature, the line of the
@transformation) so a platform can show them to a data scientist as they are.
"""

from __future__ import annotations


class RelplanError(Exception):
    """Base class of every error relplan raises on purpose."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{message}\n  at {where}" if where else message)

    def at(self, where: str | None) -> RelplanError:
        """Return the same error located at ``where`` (if it has no location yet)."""
        if where is None or self.where is not None:
            return self
        located = type(self).__new__(type(self))
        RelplanError.__init__(located, self.message, where=where)
        return located


class SchemaError(RelplanError):
    """A column is unknown, duplicated or of the wrong type."""


class TypeMismatchError(SchemaError):
    """An expression or aggregate is applied to a type it does not accept."""


class WindowError(RelplanError):
    """A window specification is invalid (size, slide, event time)."""


class FeatureError(RelplanError):
    """A feature definition is invalid (duplicate names, bad transformation)."""


class DataError(RelplanError):
    """A table given at execution does not match its source's declaration."""


class UnsupportedError(RelplanError):
    """A backend cannot run a node; the message names the node, engine and way out."""


class EngineError(RelplanError):
    """An engine rejected or failed a query relplan generated."""


class OptimizerError(RelplanError):
    """A rule failed or broke an invariant; the message names the rule."""


class SqlError(RelplanError):
    """SQL text relplan cannot read as one query: a syntax error, several statements,
    a statement that is not a query (DDL, DML), an unknown dialect, or a query past
    the size and nesting limits. The message names the line and column."""
