"""Nodes run on threads as their inputs are ready; writes keep to their slots; a build's
context reaches every node; no node outlives the run (``pipeline.node_threads``)."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest
from hamilton import ad_hoc_utils, driver
from hamilton.function_modifiers import tag

from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector
from codeanatomy_assets.pipeline.node_threads import NodeThreads, WriteSlots, few_files_computed
from codeanatomy_assets.pipeline.run_context import RunContext, enter_run, exit_run

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="unset")


def _driver(adapter: NodeThreads, **functions: Any) -> driver.Driver:
    module = ad_hoc_utils.create_temporary_module(*functions.values())
    return driver.Builder().with_modules(module).with_adapters(adapter).build()


def test_independent_nodes_run_at_once() -> None:
    # Each waits for the other at a barrier: one after the other, the first would time out.
    barrier = threading.Barrier(2, timeout=10)

    def left(start: int) -> int:
        barrier.wait()
        return start + 1

    def right(start: int) -> int:
        barrier.wait()
        return start + 2

    def both(left: int, right: int) -> int:
        return left * right

    dr = _driver(NodeThreads(), left=left, right=right, both=both)
    assert dr.execute(["both"], inputs={"start": 1}) == {"both": 6}


def test_every_node_sees_the_context_it_was_submitted_in() -> None:
    def seen() -> str:
        return _CURRENT.get()

    dr = _driver(NodeThreads(), seen=seen)
    token = _CURRENT.set("build-1")
    try:
        assert dr.execute(["seen"]) == {"seen": "build-1"}
    finally:
        _CURRENT.reset(token)


def test_a_failure_waits_for_the_other_nodes_and_skips_what_needed_it() -> None:
    # Three threads, so that ``slow`` has started before ``broken`` fails whatever order
    # Hamilton submits them in (with two, ``broken`` and ``after`` may take both threads,
    # and ``slow``, not started when execute raises, is cancelled, as it should be).
    finished: list[str] = []
    slow_started = threading.Event()

    def broken() -> int:
        assert slow_started.wait(10)
        raise ValueError("bad node")

    def slow() -> int:
        slow_started.set()
        time.sleep(0.5)
        finished.append("slow")
        return 1

    def after(broken: int) -> int:
        finished.append("after")
        return broken

    dr = _driver(NodeThreads(threads=3), broken=broken, slow=slow, after=after)
    with pytest.raises(ValueError, match="bad node"):
        dr.execute(["after", "slow"])
    assert finished == ["slow"]  # ended before execute raised; ``after`` never ran


def _writes(kind: str, sorted_map: bool = False) -> Any:
    return tag(kind=kind, sorted_map=str(sorted_map))


class _Overlaps:
    """What ran at once: ``step`` records the set of running steps as each starts and ends."""

    def __init__(self) -> None:
        self.seen: list[frozenset[str]] = []
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def step(self, name: str) -> str:
        with self._lock:
            self._running.add(name)
            self.seen.append(frozenset(self._running))
        time.sleep(0.3)
        with self._lock:
            self.seen.append(frozenset(self._running))
            self._running.discard(name)
        return name


def test_flat_writes_run_alone_and_sorted_maps_together() -> None:
    writes = _Overlaps()
    step, overlaps = writes.step, writes.seen

    @_writes("write")
    def flat_a(start: int) -> str:
        return step("flat_a")

    @_writes("write")
    def flat_b(start: int) -> str:
        return step("flat_b")

    @_writes("write", sorted_map=True)
    def map_a(start: int) -> str:
        return step("map_a")

    @_writes("write", sorted_map=True)
    def map_b(start: int) -> str:
        return step("map_b")

    dr = _driver(NodeThreads(threads=4), flat_a=flat_a, flat_b=flat_b, map_a=map_a, map_b=map_b)
    dr.execute(["flat_a", "flat_b", "map_a", "map_b"], inputs={"start": 0})
    for seen in overlaps:  # a flat write never beside another write
        assert not ({"flat_a", "flat_b"} & seen) or len(seen) == 1
    # Whether the maps met above depends on the order the threads took the nodes in (a map
    # that comes after a flat write waiting for both units waits too); alone, they meet.
    overlaps.clear()
    dr = _driver(NodeThreads(), map_a=map_a, map_b=map_b)
    dr.execute(["map_a", "map_b"], inputs={"start": 0})
    assert frozenset({"map_a", "map_b"}) in overlaps


def test_a_write_waiting_for_both_units_lets_no_new_map_start() -> None:
    slots = WriteSlots()
    order: list[str] = []
    first_map = threading.Event()
    release = threading.Event()

    def hold_map() -> None:
        with slots.hold(1):
            first_map.set()
            release.wait(10)
            order.append("map 1 done")

    def flat() -> None:
        with slots.hold(2):
            order.append("flat")

    def late_map() -> None:
        with slots.hold(1):
            order.append("map 2")

    threads = [threading.Thread(target=hold_map)]
    threads[0].start()
    assert first_map.wait(10)
    threads.append(threading.Thread(target=flat))
    threads[1].start()
    time.sleep(0.2)  # the flat write is waiting now
    threads.append(threading.Thread(target=late_map))
    threads[2].start()
    time.sleep(0.2)
    assert order == []  # one unit is free, but the late map waits behind the flat write
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["map 1 done", "flat", "map 2"]


def test_a_lightened_hold_lets_one_more_write_in() -> None:
    slots = WriteSlots()
    entered = threading.Event()
    with slots.hold(2) as hold:

        def one_unit() -> None:
            with slots.hold(1):
                entered.set()

        other = threading.Thread(target=one_unit)
        other.start()
        assert not entered.wait(0.2)  # both units held
        hold.lighten()
        assert entered.wait(10)
        other.join(10)


def test_once_a_build_computes_few_files_its_flat_writes_run_two_at_a_time() -> None:
    # The first flat write says the build is small (as ``_stream_to_lake`` does when its
    # layout computes few files); the two after it then run beside each other.
    writes = _Overlaps()
    overlaps = writes.seen

    def step(name: str, small: bool = False) -> str:
        if small:
            few_files_computed()
        return writes.step(name)

    @_writes("write")
    def first(start: int) -> str:
        return step("first", small=True)

    @_writes("write")
    def second(first: str) -> str:
        return step("second")

    @_writes("write")
    def third(first: str) -> str:
        return step("third")

    telemetry: Any = None  # no node of this graph records telemetry
    context = RunContext("run", "repo", "0" * 40, "parallel", DiagnosticsCollector(), telemetry)
    token = enter_run(context)
    try:
        dr = _driver(NodeThreads(), first=first, second=second, third=third)
        dr.execute(["second", "third"], inputs={"start": 0})
    finally:
        exit_run(token)
    assert frozenset({"second", "third"}) in overlaps
