"""Plan traversal and rewriting, written once for every rule, printer and backend.

Traversals are iterative (plans of a thousand stacked features are deeper than
Python's recursion limit) and visit each distinct subplan once, so a DAG is
never expanded into a tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import networkx as nx

from relplan.ir.nodes import Node


def walk(roots: Node | Iterable[Node]) -> list[Node]:
    """Every distinct node reachable from ``roots``, inputs before their users."""
    roots = (roots,) if isinstance(roots, Node) else tuple(roots)
    order: list[Node] = []
    done: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        n, expanded = stack.pop()
        if n in done:
            continue
        if expanded:
            done.add(n)
            order.append(n)
            continue
        stack.append((n, True))
        for child in reversed(n.inputs):
            if child not in done:
                stack.append((child, False))
    return order


def transform(
    roots: tuple[Node, ...], fn: Callable[..., Node | None], *, with_original: bool = False
) -> tuple[Node, ...]:
    """Rebuild bottom-up; ``fn`` sees each node with already-rewritten inputs and
    returns a replacement or None. Unchanged subplans keep their identity.

    With ``with_original=True`` it is called as ``fn(original, inputs)``: the node as
    it is in ``roots`` (facts a rule computed on the input plan, such as consumer
    counts or required columns, are keyed by it) and its already-rewritten inputs,
    from which ``fn`` builds the replacement itself, or returns None for
    ``original.with_inputs(inputs)``. Pruning needs this: a node may read columns
    that its narrowed form no longer reads and its narrowed inputs no longer have,
    so it cannot be rebuilt over them first."""
    done: dict[Node, Node] = {}
    for n in walk(roots):
        new_inputs = tuple(done[i] for i in n.inputs)
        changed = any(a is not b for a, b in zip(new_inputs, n.inputs))
        if with_original:
            out = fn(n, new_inputs)
            cur = n.with_inputs(new_inputs) if out is None and changed else n
        else:
            cur = n.with_inputs(new_inputs) if changed else n
            out = fn(cur)
        done[n] = cur if out is None else out
    new_roots = tuple(done[r] for r in roots)
    # Rules promise to return the very same plan when nothing changed.
    return roots if all(a is b for a, b in zip(new_roots, roots)) else new_roots


def use_counts(roots: Iterable[Node]) -> dict[Node, int]:
    """How many references (input edges and roots) point at each node."""
    counts: dict[Node, int] = {}
    for n in walk(roots):
        for child in n.inputs:
            counts[child] = counts.get(child, 0) + 1
    for r in roots:
        counts[r] = counts.get(r, 0) + 1
    return counts


def to_digraph(roots: Iterable[Node]) -> nx.DiGraph:
    """The plan as a networkx DiGraph with edges from input to user."""
    g = nx.DiGraph()
    for n in walk(roots):
        g.add_node(n)
        for child in n.inputs:
            g.add_edge(child, n)
    return g
