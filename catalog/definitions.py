"""What a catalog plan or apply takes: features and sources, from objects or a module.

``collect`` accepts a Feature, a derived feature (``rp.derived``), a Source class,
a module (its global features, derived features, lists of them and Source
classes), or an iterable of these. A derived feature brings its inputs (they are
part of what it computes); a feature over merged rows brings the sources it joins
(as their declared classes when the definitions hold them). ``load_module``
imports a module by dotted name or by file path (what the CLI is given).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from relplan.compiler.derived import DerivedFeature
from relplan.compiler.source import Source
from relplan.compiler.transformation import Feature, Transformation
from relplan.ir.errors import FeatureError, RelplanError


class DefinitionError(RelplanError):
    """Definitions that cannot be read: a module that fails to import, two features of one name."""


@dataclass
class Definitions:
    """Features by name and the sources they (or the caller) declare, by source name."""

    features: dict[str, Feature | DerivedFeature] = field(default_factory=dict)
    sources: dict[str, type[Source]] = field(default_factory=dict)
    # Sources known only as a merge's nodes (no class given): a declared class replaces one.
    _rebuilt: set[str] = field(default_factory=set, repr=False)

    def add_source(self, cls: type[Source], *, rebuilt: bool = False) -> None:
        name = cls.source_name
        have = self.sources.get(name)
        if have is not None and have is not cls and have.node() != cls.node():
            raise DefinitionError(
                f"two different sources are named {name!r}: {have.node().details()} and {cls.node().details()}"
            )
        if have is None or (name in self._rebuilt and not rebuilt):
            self.sources[name] = cls
            if rebuilt:
                self._rebuilt.add(name)
            else:
                self._rebuilt.discard(name)

    def add_feature(self, f: Feature | DerivedFeature) -> None:
        have = self.features.get(f.name)
        if have is not None and have is not f and have != f:
            raise DefinitionError(
                f"two features are named {f.name!r}: one defined at {have.defined_at}, the other at {f.defined_at}"
            )
        self.features[f.name] = f
        if isinstance(f, DerivedFeature):
            for g in f.inputs:
                self.add_feature(g)
            return
        self.add_source(f.source)
        if f.body.rows is not None:
            from relplan.catalog.serialize import source_from_dict
            from relplan.ir import nodes
            from relplan.ir.graph import walk

            for n in walk([f.body.rows]):
                if isinstance(n, nodes.Source) and n.name != f.source.source_name:
                    self.add_source(source_from_dict(_source_document(n)), rebuilt=True)


def _source_document(n: Any) -> dict[str, Any]:
    from relplan.catalog.serialize import FORMAT_VERSION, schema_to_dict

    return {"relplan": FORMAT_VERSION, "kind": "source", "class_name": n.name, "name": n.name,
            "columns": schema_to_dict(n.columns), "event_time": n.event_time, "lateness": n.lateness,
            "bounded": n.bounded, "keys": list(n.keys)}


def collect(definitions: Any) -> Definitions:
    """The features and sources in ``definitions`` (see the module docstring)."""
    out = Definitions()
    _add(out, definitions, depth=0)
    return out


def _add(out: Definitions, item: Any, depth: int) -> None:
    if isinstance(item, Definitions):
        for f in item.features.values():
            out.add_feature(f)
        for s in item.sources.values():
            out.add_source(s)
    elif isinstance(item, (Feature, DerivedFeature)):
        out.add_feature(item)
    elif isinstance(item, type) and issubclass(item, Source) and item is not Source:
        out.add_source(item)
    elif isinstance(item, types.ModuleType):
        for value in vars(item).values():
            if isinstance(value, (Feature, DerivedFeature, list, tuple)) or (
                isinstance(value, type) and issubclass(value, Source) and value is not Source
                and getattr(value, "__module__", None) == item.__name__
            ):
                _add(out, value, depth + 1)
    elif isinstance(item, Transformation):
        if depth == 0:
            raise FeatureError(
                f"{item.name} is a transformation, not a feature: call it with a window, "
                f"e.g. {item.name}(window=rp.sliding('1h'))"
            )
    elif isinstance(item, (list, tuple, set, frozenset)) or (isinstance(item, Iterable) and not isinstance(item, (str, bytes, dict))):
        for x in item:
            # Inside a module, only lists made of features count (a list of numbers is not a definition).
            if depth > 0 and not isinstance(x, (Feature, DerivedFeature, list, tuple)) and not (
                isinstance(x, type) and issubclass(x, Source)
            ):
                return
            _add(out, x, depth + 1)
    elif depth == 0:
        raise FeatureError(
            f"definitions are features, Source classes, modules or lists of them, got {type(item).__name__}: {item!r}"
        )


def load_module(spec: str) -> types.ModuleType:
    """Import ``spec``: a file path (``features/fraud.py``) or a dotted module name (``features.fraud``)."""
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise DefinitionError(f"no such file: {spec}")
        name = "relplan_definitions_" + os.path.splitext(os.path.basename(path))[0]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise DefinitionError(f"cannot import {spec}: not a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and sources look their module up while it runs
        # The file's own folder first, as `python file.py` would: its sibling modules import.
        sys.path.insert(0, os.path.dirname(path))
        try:
            loader_spec.loader.exec_module(module)
        except RelplanError:
            sys.modules.pop(name, None)
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - whatever the user's module raised is reported
            sys.modules.pop(name, None)
            raise DefinitionError(f"importing {spec} failed: {type(e).__name__}: {e}") from e
        finally:
            sys.path.remove(os.path.dirname(path))
        return module
    try:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        if e.name and spec.startswith(e.name):
            raise DefinitionError(f"no module named {spec!r} (looked in the current folder and on sys.path)") from None
        raise DefinitionError(f"importing {spec} failed: {type(e).__name__}: {e}") from e
    except RelplanError:
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001
        raise DefinitionError(f"importing {spec} failed: {type(e).__name__}: {e}") from e
