"""The worker's process settings: what it imported is frozen out of the collector's way."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from infra import heap


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, afterwards."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_settling_freezes_what_the_worker_imported_and_raises_the_young_threshold() -> None:
    kept = ["imported", "built"]  # lives as long as the process (a container: tracked)
    gc.unfreeze()
    _, middle, old = gc.get_threshold()

    heap.settle()

    assert gc.get_freeze_count() > 0
    assert not any(candidate is kept for candidate in gc.get_objects()), (
        "a frozen object is out of the collector's sight"
    )
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("collector")
def test_settling_collects_the_garbage_the_start_left_before_freezing() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle only the collector frees
    gone = weakref.ref(first)
    gc.unfreeze()
    gc.disable()  # so that nothing but settle collects it
    try:
        del first, second
        assert gone() is not None
        heap.settle()
    finally:
        gc.enable()

    assert gone() is None, "frozen garbage would stay for the life of the process"
    assert gc.get_freeze_count() > 0
