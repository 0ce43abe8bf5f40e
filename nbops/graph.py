"""Graph helpers over ``stage -> needs`` mappings, on the standard library's ``graphlib``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

CHECK_TASK = "check_conf"
CLOSE_TASK = "close_run"
OUTCOME_TASK = "stages_succeeded"
GATE_TASK = "retrain_gate"
APPROVE_TASK = "approve_champion"
PROMOTE_TASK = "promote_champion"
MONITOR_STAGE = "monitor"
DRIFT_TASK = "drift_trigger"
RESERVED_STAGES = (
    CHECK_TASK,
    CLOSE_TASK,
    OUTCOME_TASK,
    GATE_TASK,
    APPROVE_TASK,
    PROMOTE_TASK,
    MONITOR_STAGE,
    DRIFT_TASK,
)
"""Names no stage may take: the generated DAGs' own tasks (the first checks the trigger conf, the last
close the run's record and carry the stages' outcome into the DAG run's state; the retraining gate
and its approval; the monitor notebook, run as a stage of that name, and its trigger)."""


def find_cycle(needs: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One dependency cycle as ``[a, b, ..., a]`` where each stage needs the one before it, or None."""
    try:
        _sorter(needs).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def topological_order(needs: Mapping[str, Iterable[str]]) -> list[str]:
    """Stages ordered so that every stage comes after what it needs."""
    return list(_sorter(needs).static_order())


def _sorter(needs: Mapping[str, Iterable[str]]) -> TopologicalSorter[str]:
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for node, ups in needs.items():
        sorter.add(node, *(u for u in ups if u in needs))
    return sorter


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
