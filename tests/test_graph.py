from __future__ import annotations

import pytest

from nbops.graph import ancestors, descendants, find_cycle, topological_order

pytestmark = pytest.mark.unit

DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "x": ()}


def test_topological_order_respects_needs() -> None:
    order = topological_order(DIAMOND)
    assert sorted(order) == sorted(DIAMOND)
    for node, ups in DIAMOND.items():
        assert all(order.index(u) < order.index(node) for u in ups)


def test_descendants_and_ancestors() -> None:
    assert descendants(DIAMOND, ["b"]) == {"d"}
    assert descendants(DIAMOND, ["a"]) == {"b", "c", "d"}
    assert ancestors(DIAMOND, "d") == {"a", "b", "c"}
    assert ancestors(DIAMOND, "x") == set()


def test_cycle_found_in_dependency_order() -> None:
    assert find_cycle(DIAMOND) is None
    cycle = find_cycle({"a": ("c",), "b": ("a",), "c": ("b",)})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
