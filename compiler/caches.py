"""The caches that make recompiling a changed feature set cheap, and their reset."""

from __future__ import annotations


def clear_caches() -> None:
    """Forget compiled, optimized and rendered plans (e.g. to measure a cold compile)."""
    from relplan.backends import flink, sql
    from relplan.compiler import compile as compile_module
    from relplan.compiler import optimize as optimize_module
    from importlib import import_module

    compile_module._compile_per_event.cache_clear()
    compile_module._compile_per_window.cache_clear()
    compile_module._WINDOWS.clear()
    compile_module._BY_FEATURE.clear()
    compile_module._CALLS.clear()
    import_module("relplan.ir.nodes")._CHECKED_WINDOWS.clear()
    optimize_module._optimize_component.cache_clear()
    import_module("relplan.rules.simplify_expressions")._SIMPLE_WINDOWS.clear()
    import_module("relplan.rules.simplify_expressions")._SIMPLIFIED.clear()  # the package names its rule function so
    share_windows = import_module("relplan.rules.share_windows")
    for cache in (share_windows._NAMED, share_windows._MERGED, share_windows._WINDOWS):
        cache.clear()
    share_windows._unnamed.cache_clear()
    sql._RENDERED.clear()
    sql._CTE_TEXT.clear()
    sql._ITEM_TEXT.clear()
    sql._OWN.clear()
    flink._DDL_TEXT.clear()
