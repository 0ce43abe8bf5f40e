"""Small graph helpers over ``stage -> needs`` mappings (no third-party graph library needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(needs: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one dependency cycle as ``[a, b, ..., a]`` in dependency order, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for up in needs.get(node, ()):
            if state.get(up) == 1:
                cycle = [*stack[stack.index(up) :], up]
                return list(reversed(cycle))
            if up not in state and up in needs:
                found = visit(up)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in needs:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(needs: Mapping[str, Iterable[str]]) -> list[str]:
    """Stages ordered so that every stage comes after what it needs (stable by input order)."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen:
            return
        seen.add(node)
        for up in needs.get(node, ()):
            visit(up)
        done.append(node)

    for node in needs:
        visit(node)
    return done


def descendants(needs: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """Every stage that (transitively) needs one of ``roots``, roots excluded."""
    children: dict[str, set[str]] = {n: set() for n in needs}
    for node, ups in needs.items():
        for up in ups:
            children.setdefault(up, set()).add(node)
    found: set[str] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def ancestors(needs: Mapping[str, Iterable[str]], node: str) -> set[str]:
    """Every stage ``node`` (transitively) needs."""
    found: set[str] = set()
    todo = list(needs.get(node, ()))
    while todo:
        up = todo.pop()
        if up not in found:
            found.add(up)
            todo.extend(needs.get(up, ()))
    return found
