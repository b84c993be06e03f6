"""The ``relplan`` command: the feature catalog from a shell or a platform's CI.

    relplan plan features/fraud.py          # what apply would change; exit 1 if anything breaks
    relplan apply features/fraud.py         # write it; refused (exit 1) if it breaks a deployed feature
    relplan deploy fraud_scoring tx_count_1d
    relplan list --owner fraud-team
    relplan show tx_count_1d@v1
    relplan lineage tx_count_1d --format dot --output lineage.dot
    relplan sql features/fraud.py --dialect spark

A thin shell over the public API (``rp.Catalog``, ``rp.compile``): every command
is a few calls of it. ``main(argv)`` returns the exit code; ``python -m
relplan.cli`` and the installed ``relplan`` script run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from relplan.catalog.store import Catalog, Entry

DEFAULT_CATALOG = "relplan-catalog.db"
CATALOG_ENV = "RELPLAN_CATALOG"

# Exit codes.
OK = 0
BREAKING = 1  # plan: a breaking change; apply: refused by the guardrail
ERROR = 2  # a usage error, or an error relplan reports (bad path, module that fails, unknown name)
INTERNAL = 3  # a bug in relplan: the traceback is printed
INTERRUPTED = 130

EPILOG = f"""\
exit codes:
  0    success; for plan: no change is breaking
  1    plan: at least one change is breaking (blocked or not: a breaking change needs a
       review), or apply would refuse the plan (e.g. it removes a deployed feature);
       apply: refused because a breaking change (or a removal) reaches a deployed or
       protected feature (nothing was written)
  2    usage error, or an error relplan reports: a bad path, a module that fails to
       import, a name the catalog does not have, no catalog file for a command that
       only reads one
  3    an internal error (a bug in relplan; the traceback is printed)
  130  interrupted (Ctrl-C)

the catalog file: --catalog PATH, else the environment variable {CATALOG_ENV}, else
./{DEFAULT_CATALOG}. Only apply creates it; every other command needs an existing
one (plan against a missing catalog plans against an empty one).

MODULE is a Python file (features/fraud.py) or a dotted module name (features.fraud,
imported from the current folder or sys.path): its global features, lists of
features and Source classes are the definitions.
"""


class CliError(Exception):
    """An error of the command line itself (exit 2), e.g. no catalog at the path."""


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    def formatter(prog: str) -> argparse.HelpFormatter:
        return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)

    parser = argparse.ArgumentParser(
        prog="relplan",
        description="relplan's feature catalog and compiler from the command line: plan and apply feature "
        "definitions, browse the catalog, print plans and SQL.",
        epilog=EPILOG, formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"relplan {_version()}",
                        help="print relplan's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, help_: str, description: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description, epilog=EPILOG, formatter_class=formatter)
        p.set_defaults(run=run)
        return p

    def catalog_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalog", metavar="PATH",
                       help=f"the catalog file (default: ${CATALOG_ENV}, else ./{DEFAULT_CATALOG})")

    def module_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("module", metavar="MODULE",
                       help="the definitions: a Python file (features/fraud.py) or a dotted module name (features.fraud)")

    def change_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--partial", action="store_true",
                       help="MODULE is part of the project: catalog features missing from it are left alone "
                       "(default: they are removed)")
        p.add_argument("--new-version", metavar="NAME", nargs="+", action="extend", default=[],
                       help="publish these features' breaking changes as new versions: the jobs that run them "
                       "keep the version they run (put MODULE first, or repeat the option)")
        p.add_argument("--force", action="store_true",
                       help="apply breaking changes to deployed or protected features anyway: their jobs move "
                       "to the new version")

    p = command("plan", "what apply would change, object by object",
                "Classify every feature and source of MODULE against the catalog: added, removed, unchanged, "
                "metadata-only, non-breaking or BREAKING (with the reasons, the jobs affected, and whether "
                "apply would refuse it). Writes nothing. Exit code 1 if any change is breaking.", cmd_plan)
    module_arg(p)
    catalog_option(p)
    change_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON (the same exit codes)")
    p.add_argument("--all", action="store_true", help="list the unchanged objects too")

    p = command("apply", "write the definitions to the catalog",
                "Apply MODULE: new versions for changed features and sources, new entries for new ones (and, "
                "unless --partial, removal of those missing from it). Creates the catalog file if needed. "
                "Refuses (exit 1, nothing written) a breaking change that reaches a deployed or protected "
                "feature unless it is published with --new-version or forced with --force.", cmd_apply)
    module_arg(p)
    catalog_option(p)
    change_options(p)

    p = command("list", "the catalog's features (or sources) as a table",
                "List the current features, filtered; every filter given must match.", cmd_list)
    catalog_option(p)
    p.add_argument("--source", metavar="S", help="only features of source S")
    p.add_argument("--key", metavar="K", help="only features keyed by K")
    p.add_argument("--owner", metavar="O", help="only features owned by O")
    p.add_argument("--tag", metavar="T", help="only features tagged T")
    p.add_argument("--name", metavar="GLOB", help="only names matching GLOB (e.g. 'tx_*')")
    p.add_argument("--search", metavar="TEXT", help="only features whose name, description or tags contain TEXT "
                   "(case-insensitive)")
    p.add_argument("--removed", action="store_true", help="include removed features")
    p.add_argument("--sources", action="store_true", help="list the sources instead of the features")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")

    p = command("show", "one feature (or source): entry, versions, history, jobs, plan",
                "Show a feature: its catalog entry, every version, its history, the jobs that run it, and "
                "the explain() of its compiled plan. NAME@vN shows version N. A source's name shows the "
                "source.", cmd_show)
    p.add_argument("name", metavar="NAME[@vN]", help="a feature (or source) name, optionally with a version")
    catalog_option(p)
    p.add_argument("--json", action="store_true", help="print it as JSON")

    p = command("lineage", "column lineage of a feature",
                "The source columns a feature reads (value: its values; rows: the columns that decide its rows, "
                "such as filters, keys and event time) and the deployed jobs that run it, from the catalog's "
                "lineage graph; or the features that read one source column.", cmd_lineage)
    p.add_argument("name", metavar="NAME", nargs="?",
                   help="a feature (NAME or NAME@vN), or Source.column for the features that read a column; "
                   "the whole catalog if left out")
    catalog_option(p)
    p.add_argument("--format", choices=("text", "json", "dot", "svg"), default="text",
                   help="output format (default: text; svg needs Graphviz's dot)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")

    p = command("history", "what happened to a feature (or to the whole catalog)",
                "The catalog's history, oldest first: versions added, metadata edits, deployments, "
                "deprecations, removals.", cmd_history)
    p.add_argument("name", metavar="NAME", nargs="?", help="a feature (or source) name; all of the catalog if left out")
    catalog_option(p)
    p.add_argument("--json", action="store_true", help="print it as JSON")

    p = command("deploy", "record that a job runs features (they become protected)",
                "Record that JOB runs these features at their current versions (or NAME@vN): from then on a "
                "breaking change to them needs --new-version or --force.", cmd_deploy)
    p.add_argument("job", metavar="JOB", help="the job's name")
    p.add_argument("names", metavar="NAME", nargs="+", help="feature names (NAME or NAME@vN)")
    catalog_option(p)

    p = command("undeploy", "forget a job", "Forget JOB: its features stay protected only if another job "
                "runs them or they were protected.", cmd_undeploy)
    p.add_argument("job", metavar="JOB", help="the job's name")
    catalog_option(p)

    p = command("protect", "mark features protected (or not)",
                "Protected features take breaking changes only as new versions (or forced), deployed or not.",
                cmd_protect)
    p.add_argument("names", metavar="NAME", nargs="+", help="feature names")
    p.add_argument("--off", action="store_true", help="remove the protection instead")
    catalog_option(p)

    p = command("deprecate", "mark features deprecated",
                "Deprecated features stay resolvable (with a warning) and are listed as deprecated.", cmd_deprecate)
    p.add_argument("names", metavar="NAME", nargs="+", help="feature names")
    p.add_argument("--reason", metavar="TEXT", help="why, and what to use instead (shown to every user of it)")
    catalog_option(p)

    p = command("explain", "print the plan of a module's features (no catalog needed)",
                "Compile every feature of MODULE into one plan and print its explain().", cmd_explain)
    module_arg(p)
    p.add_argument("--optimize", action="store_true", help="optimize the plan first (rp.optimize)")
    p.add_argument("--verbose", action="store_true", help="add the features, the schemas and the optimizer trace")

    p = command("sql", "print the SQL of a module's features (no catalog needed)",
                "Compile every feature of MODULE into one plan and print the SQL an engine runs for it.", cmd_sql)
    module_arg(p)
    p.add_argument("--dialect", choices=("duckdb", "spark", "flink"), default="duckdb",
                   help="the engine whose SQL to print (default: duckdb)")
    p.add_argument("--mode", choices=("batch", "streaming"), default="batch",
                   help="Flink only: a batch or a streaming script (default: batch)")
    p.add_argument("--optimize", action="store_true", help="optimize the plan first (rp.optimize)")
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("relplan")
    except Exception:  # noqa: BLE001 - not installed: the source tree's version
        return "(not installed)"


# -- shared helpers -----------------------------------------------------------------------------


def catalog_path(args: argparse.Namespace) -> str:
    return args.catalog or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG


def open_catalog(args: argparse.Namespace, *, create: bool = False) -> Catalog:
    """The catalog at the command's path; only ``create`` makes a new file."""
    from relplan.catalog import Catalog

    path = catalog_path(args)
    if os.path.isdir(path):
        raise CliError(f"{path} is a folder, not a catalog file")
    if not os.path.exists(path):
        if not create:
            raise CliError(f"no catalog at {path} (relplan apply MODULE creates one; --catalog PATH or "
                           f"${CATALOG_ENV} names another)")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CliError(f"cannot create the catalog {path}: no folder {folder}")
    return Catalog(path)


def load_definitions(spec: str) -> Any:
    from relplan.catalog import collect, load_module

    return collect(load_module(spec))


def module_features(spec: str) -> list[Any]:
    features = list(load_definitions(spec).features.values())
    if not features:
        raise CliError(f"{spec} defines no features (its global features and lists of features are read)")
    return features


def out(text: str = "", file: TextIO | None = None) -> None:
    print(text, file=file or sys.stdout)


def print_json(obj: Any) -> None:
    out(json.dumps(obj, indent=2, sort_keys=False, default=_json_default))


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(h) for h in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _first_line(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _plan_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"complete": not args.partial, "new_version": list(args.new_version), "force": args.force}


# -- commands -----------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    from relplan.catalog import Catalog

    defs = load_definitions(args.module)
    path = catalog_path(args)
    if os.path.isdir(path):
        raise CliError(f"{path} is a folder, not a catalog file")
    if os.path.exists(path):
        with Catalog(path) as cat:
            plan = cat.plan(defs, **_plan_kwargs(args))
        note = None
    else:  # plan against an empty catalog, without creating the file
        with Catalog(":memory:") as cat:
            plan = dataclasses.replace(cat.plan(defs, **_plan_kwargs(args)), path=path)
        note = f"(no catalog at {path} yet: relplan apply creates it)"
    if args.json:
        d = plan.to_dict()
        d["summary"] = {c: n for c in ("added", "removed", "unchanged", "metadata-only", "non-breaking", "breaking")
                        if (n := len(plan.by_category(c)))}
        d["breaking"] = bool(plan.breaking)
        d["blocked"] = [c.name for c in plan.blocked]
        print_json(d)
    else:
        out(plan.text(unchanged=args.all))
        if note:
            out(note)
    return BREAKING if plan.breaking or plan.blocked else OK


def cmd_apply(args: argparse.Namespace) -> int:
    from relplan.catalog import GuardrailError

    defs = load_definitions(args.module)
    with open_catalog(args, create=True) as cat:
        try:
            result = cat.apply(defs, **_plan_kwargs(args))
        except GuardrailError as e:
            out(e.plan.text())
            sys.stdout.flush()
            out(f"relplan: {_refusal(e.plan)}", file=sys.stderr)
            return BREAKING
    if result.has_changes:
        out(result.text())
    else:
        out(f"nothing to apply: the catalog {result.path} already matches {args.module} (generation {result.generation})")
    return OK


def _refusal(plan: Any) -> str:
    """Why apply refused, and the ways forward for each kind of blocked change."""
    changed = sorted({n for c in plan.blocked if c.category == "breaking" for n in c.protected})
    removed = sorted({n for c in plan.blocked if c.category == "removed" for n in c.protected})
    parts, ways = [], []
    if changed:
        parts.append(f"breaking changes reach deployed or protected features {', '.join(changed)}")
        ways.append(f"publish them as new versions with --new-version {' '.join(changed)}")
    if removed:
        parts.append(f"it would remove deployed or protected features {', '.join(removed)}")
        ways.append("keep them in MODULE (or use --partial), undeploy their jobs")
    ways.append("or --force")
    return f"apply refused: {'; '.join(parts)}. Nothing was written: {', '.join(ways)}"


def cmd_list(args: argparse.Namespace) -> int:
    with open_catalog(args) as cat:
        if args.sources:
            entries = cat.list("source", name=args.name, text=args.search, include_removed=args.removed)
            rows_json = []
            rows = []
            for e in entries:
                node = cat.get_source(f"{e.name}@v{e.version}").node()
                cols = [f"{c.name}:{c.dtype.name}" for c in node.columns]
                readers = cat.source_readers(e.name)
                rows.append([e.name, f"v{e.version}", e.status, node.event_time or "", len(readers), ", ".join(cols)])
                rows_json.append({**_entry_dict(e), "event_time": node.event_time, "columns": cols, "features": readers})
            if args.json:
                print_json(rows_json)
            elif rows:
                out(table(rows, ["SOURCE", "VERSION", "STATUS", "EVENT TIME", "FEATURES", "COLUMNS"]))
            else:
                out("no sources match" if _filtered(args) else f"no sources in {cat.path}")
            return OK
        entries = cat.list(name=args.name, source=args.source, key=args.key, owner=args.owner, tag=args.tag,
                           text=args.search, include_removed=args.removed)
        if args.json:
            print_json([_entry_dict(e) for e in entries])
            return OK
        if not entries:
            out("no features match" if _filtered(args) else f"no features in {cat.path}")
            return OK
        rows = [[e.name, f"v{e.version}", e.status + (", protected" if e.protected and not e.jobs else ""),
                 e.source, ", ".join(e.keys), e.owner or "", ", ".join(e.tags), ", ".join(e.jobs),
                 _first_line(e.description)] for e in entries]
        out(table(rows, ["FEATURE", "VERSION", "STATUS", "SOURCE", "KEYS", "OWNER", "TAGS", "JOBS", "DESCRIPTION"]))
    return OK


def _filtered(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) for k in ("source", "key", "owner", "tag", "name", "search"))


def _entry_dict(e: Entry) -> dict[str, Any]:
    d = dataclasses.asdict(e)
    d["ref"] = e.ref
    for k in ("keys", "tags", "jobs"):
        d[k] = list(d[k])
    return d


def _split_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.strip().partition("@")
    if version:
        digits = version[1:] if version[:1] in ("v", "V") else version
        if not digits.isdigit():
            from relplan.catalog import CatalogError

            raise CatalogError(f"{ref!r} is not a feature reference: write 'name' or 'name@v2'")
        return name, int(digits)
    return name, None


def cmd_show(args: argparse.Namespace) -> int:
    from relplan.catalog import CatalogError

    with open_catalog(args) as cat:
        name, version = _split_ref(args.name)
        heads = cat.list(name=name, include_removed=True) if name.isidentifier() else []
        if not heads:
            try:
                return _show_source(cat, args)
            except CatalogError:
                pass
            cat.get(args.name)  # raises the catalog's error for a feature (with its close matches)
        head = heads[0]
        ref = f"{name}@v{version if version is not None else head.version}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the status says it
            feature = cat.get(ref)
        versions = cat.versions(name)
        history = cat.history(name)
        jobs = {job: fs[name] for job, fs in cat.deployments().items() if name in fs}
        explain = _explain_one(feature)
        shown = next(v for v in versions if v.version == int(ref.rsplit("@v", 1)[1]))
    derived = _derived_fields(feature)
    if args.json:
        print_json({
            "ref": ref, "current_version": head.version, "status": head.status, "protected": head.protected,
            "entry": {**_entry_dict(shown), "protected": head.protected,
                      "jobs": sorted(job for job, v in jobs.items() if v == shown.version)},
            "window": None if derived else repr(feature.spec), "columns": list(feature.columns),
            "defined_at": feature.defined_at, **({"derived": dict(derived)} if derived else {}),
            "versions": [_entry_dict(v) for v in versions], "history": [dataclasses.asdict(h) for h in history],
            "deployments": jobs, "explain": explain,
        })
        return OK
    current = shown.version == head.version
    out(f"feature {ref}" + (" (current)" if current and head.status == "active" else
                            f" ({head.status})" if current else f" (superseded; current: v{head.version}, {head.status})"))
    fields = [
        ("source", shown.source), *derived, ("keys", ", ".join(shown.keys)),
        ("window", None if derived else repr(feature.spec)), ("columns", ", ".join(feature.columns)), ("description", shown.description), ("owner", shown.owner),
        ("tags", ", ".join(shown.tags)), ("defined at", feature.defined_at), ("fingerprint", shown.fingerprint),
        ("created", shown.created_at),
        ("protected", "yes" if head.protected else "no"),
    ]
    for label, value in fields:
        if value:
            out(f"  {label + ':':<13}{value}")
    out("versions:")
    out(_indent(table([[f"v{v.version}", v.status, v.created_at, v.fingerprint[:12]] for v in versions],
                      ["VERSION", "STATUS", "CREATED", "FINGERPRINT"])))
    out("deployments:")
    out(_indent(table([[job, f"v{v}"] for job, v in sorted(jobs.items())], ["JOB", "VERSION"]) if jobs else "(none)"))
    out("history:")
    out(_indent(_history_table(history)))
    out(f"plan (rp.compile([{ref}]).explain()):")
    out(_indent(explain))
    return OK


def _derived_fields(feature: Any) -> list[tuple[str, str]]:
    """What ``show`` prints of a derived feature (rp.derived): its expression, inputs and request fields."""
    from relplan.compiler.derived import DerivedFeature

    if not isinstance(feature, DerivedFeature):
        return []
    return [
        ("derived", feature.expr.sql()),
        ("inputs", ", ".join(f.name for f in feature.inputs) or "(none)"),
        ("request", ", ".join(f"{r.request}.{r.name} ({r.dtype})" for r in feature.request) or "(none)"),
    ]


def _explain_one(feature: Any) -> str:
    """The plan of one feature; a derived feature whose inputs no batch plan's row holds
    together (or whose request fields are no source's columns) says where it is computed."""
    import relplan as rp
    from relplan.compiler.derived import DerivedFeature
    from relplan.ir.errors import RelplanError

    try:
        return rp.compile([feature]).explain()
    except RelplanError as e:
        if not isinstance(feature, DerivedFeature):
            raise
        return f"(no batch plan: {e.message.splitlines()[0]})"


def _show_source(cat: Catalog, args: argparse.Namespace) -> int:
    name, version = _split_ref(args.name)
    cls = cat.get_source(args.name)
    node = cls.node()
    versions = cat.versions(name, kind="source")
    history = cat.history(name, kind="source")
    readers = cat.list(name="*")
    reading = set(cat.source_readers(name))
    readers = [e for e in readers if e.name in reading]
    if args.json:
        print_json({"source": name, "ref": f"{name}@v{version or versions[-1].version}",
                    "columns": [[c.name, c.dtype.name] for c in node.columns], "event_time": node.event_time,
                    "lateness_us": node.lateness, "bounded": node.bounded, "keys": list(node.keys),
                    "features": [e.name for e in readers], "versions": [_entry_dict(v) for v in versions],
                    "history": [dataclasses.asdict(h) for h in history]})
        return OK
    out(f"source {name}@v{version or versions[-1].version}")
    out(f"  {'event time:':<13}{node.event_time or '(none)'}")
    out(f"  {'keys:':<13}{', '.join(node.keys) or '(none)'}")
    out(f"  {'bounded:':<13}{'yes' if node.bounded else 'no'}")
    out("columns:")
    out(_indent(table([[c.name, c.dtype.name] for c in node.columns], ["COLUMN", "TYPE"])))
    out("features:")
    out(_indent(", ".join(e.name for e in readers) or "(none)"))
    out("versions:")
    out(_indent(table([[f"v{v.version}", v.status, v.created_at, v.fingerprint[:12]] for v in versions],
                      ["VERSION", "STATUS", "CREATED", "FINGERPRINT"])))
    out("history:")
    out(_indent(_history_table(history)))
    return OK


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + ln if ln else ln for ln in text.splitlines())


def _history_table(history: Sequence[Any], with_name: bool = False) -> str:
    if not history:
        return "(none)"
    rows = []
    for h in history:
        row = [str(h.generation), h.at, f"v{h.version}" if h.version is not None else "", h.action, h.detail or ""]
        if with_name:
            row.insert(2, f"{h.kind} {h.name}")
        rows.append(row)
    header = ["GEN", "AT", "VERSION", "ACTION", "DETAIL"]
    if with_name:
        header.insert(2, "OBJECT")
    return table(rows, header)


def cmd_history(args: argparse.Namespace) -> int:
    from relplan.catalog import CatalogError

    with open_catalog(args) as cat:
        if args.name is None:
            history = cat.history()
        else:
            try:
                history = cat.history(args.name)
            except CatalogError as e:
                try:
                    history = cat.history(args.name, kind="source")
                except CatalogError:
                    raise e from None
    if args.json:
        print_json([dataclasses.asdict(h) for h in history])
    else:
        out(_history_table(history, with_name=args.name is None))
    return OK


def cmd_deploy(args: argparse.Namespace) -> int:
    with open_catalog(args) as cat:
        resolved = cat.deploy(args.job, args.names)
    for name, version in resolved.items():
        out(f"deployed {name}@v{version} in job {args.job}")
    return OK


def cmd_undeploy(args: argparse.Namespace) -> int:
    with open_catalog(args) as cat:
        cat.undeploy(args.job)
    out(f"undeployed job {args.job}")
    return OK


def cmd_protect(args: argparse.Namespace) -> int:
    with open_catalog(args) as cat:
        cat.protect(args.names, not args.off)
    out(("unprotected " if args.off else "protected ") + ", ".join(args.names))
    return OK


def cmd_deprecate(args: argparse.Namespace) -> int:
    with open_catalog(args) as cat:
        cat.deprecate(args.names, args.reason)
    out(f"deprecated {', '.join(args.names)}" + (f": {args.reason}" if args.reason else ""))
    return OK


def cmd_lineage(args: argparse.Namespace) -> int:
    from relplan.catalog.lineage import LineageGraph, lineage_graph

    with open_catalog(args) as cat:
        target = args.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if target is None:  # the whole catalog
                graph, view = cat.lineage(), None
            elif "." in target and "@" not in target:  # Source.column: the features that read it
                graph = cat.lineage()
                source, _, column = target.partition(".")
                node = ("column", source, column)
                graph.readers(source, column)  # an unknown source or column: the graph's error
                keep = {node} | set(graph.downstream(node))
                graph, view = LineageGraph(graph.graph.subgraph(keep).copy()), None
            else:
                name, version = _split_ref(target)
                feature = cat.get(target)  # an unknown name: the catalog's error, with close matches
                if version is None:
                    graph, view = cat.lineage(), name
                else:  # an older version: its own lineage, and the jobs that run that version
                    jobs = {job: [name] for job, fs in cat.deployments().items() if fs.get(name) == version}
                    graph, view = lineage_graph([feature], jobs), name
    render = {"text": "to_text", "json": "to_json", "dot": "to_dot", "svg": "to_svg"}[args.format]
    text = getattr(graph, render)(view)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        out(f"wrote the {args.format} lineage of {target or 'the catalog'} to {args.output}")
    else:
        out(text.rstrip("\n"))
    return OK


def _compiled(args: argparse.Namespace) -> Any:
    import relplan as rp

    plan = rp.compile(module_features(args.module))
    return rp.optimize(plan) if args.optimize else plan


def cmd_explain(args: argparse.Namespace) -> int:
    out(_compiled(args).explain(verbose=args.verbose))
    return OK


def cmd_sql(args: argparse.Namespace) -> int:
    options = {"mode": args.mode} if args.dialect == "flink" else {}
    if args.mode != "batch" and args.dialect != "flink":
        raise CliError("--mode is for --dialect flink only")
    out(_compiled(args).to_sql(args.dialect, **options))
    return OK


# -- the entry point ----------------------------------------------------------------------------


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    prefix = "" if issubclass(category, DeprecationWarning) else f"{category.__name__}: "
    print(f"relplan: warning: {prefix}{message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (2)
        return int(e.code or 0) if not isinstance(e.code, str) else ERROR
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return ERROR
    from relplan.ir.errors import RelplanError

    try:
        with warnings.catch_warnings():
            # The catalog's deprecation warnings (a deprecated feature resolved), once each.
            warnings.filterwarnings("default", message="feature '", category=DeprecationWarning)
            warnings.showwarning = _show_warning
            return int(args.run(args))
    except (RelplanError, CliError) as e:
        print(f"relplan: error: {e}", file=sys.stderr)
        return ERROR
    except BrokenPipeError:  # `relplan list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # (Python's flush at exit would fail again)
        return 141
    except OSError as e:  # e.g. --output into a folder that does not exist
        print(f"relplan: error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return ERROR
    except KeyboardInterrupt:
        print("relplan: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception:  # noqa: BLE001 - a bug: say so, with the traceback to report
        import traceback

        traceback.print_exc()
        print("relplan: internal error (a bug in relplan; please report it with the traceback above)", file=sys.stderr)
        return INTERNAL


if __name__ == "__main__":
    sys.exit(main())
