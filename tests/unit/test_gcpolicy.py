"""The host's GC policy (``core/gcpolicy.py``): a full pass's survivors are frozen, so the
next pass does not scan them; garbage among the young is still collected at once, and
garbage the freezing hid is found by the major pass, which runs on the loop's thread."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import pickle
import signal
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.app.services import start_host
from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.offline.process import EngineSpec, serve
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.gcpolicy import FreezingCollector
from hitl_desktop.core.turns import CustomerLine


class Node:
    """A weak-referenceable object to build cycles with."""

    def __init__(self) -> None:
        self.other: object = self


@pytest.fixture(autouse=True)
def explicit_passes_only() -> Iterator[None]:
    """Only the tests' own ``gc.collect`` calls run passes (an automatic one while a test
    allocates would freeze or count what it looks at before it looks)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def policy() -> Iterator[FreezingCollector]:
    collector = FreezingCollector(major_min_s=3600.0, freeze_after=2)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


def _in_generations(obj: object) -> bool:
    """Is ``obj`` among what the collector scans (not frozen)?"""
    return any(o is obj for g in range(3) for o in gc.get_objects(generation=g))


def test_a_full_pass_freezes_its_survivors(policy: FreezingCollector) -> None:
    kept = [[i] for i in range(5000)]
    assert _in_generations(kept)
    before = gc.get_freeze_count()
    gc.collect()
    assert policy.full_passes == 1
    assert gc.get_freeze_count() >= before + 5000
    assert not _in_generations(kept)  # the next full pass does not scan them
    assert len(gc.get_objects(generation=2)) < 1000
    assert kept[4999] == [4999]  # (still there)


def test_young_cycles_are_still_collected(policy: FreezingCollector) -> None:
    node = Node()
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None


def test_a_cycle_that_dies_frozen_waits_for_the_major_pass(policy: FreezingCollector) -> None:
    node = Node()
    ref = weakref.ref(node)
    gc.collect()  # node survives it: frozen
    del node
    gc.collect()
    assert ref() is not None  # what the freezing costs: hidden from full passes ...
    assert policy.major()
    assert ref() is None  # ... until the major pass
    assert policy.major_passes == 1 and policy.major_found >= 2
    assert not policy.major_if_due()  # none due


def test_stop_removes_the_policy() -> None:
    thresholds = gc.get_threshold()
    collector = FreezingCollector(full_every=2)
    collector.start()
    assert gc.get_threshold()[2] == 2
    collector.stop()
    collector.stop()
    assert gc.get_threshold() == thresholds
    assert collector._on_gc not in gc.callbacks
    kept = [[i] for i in range(100)]
    gc.collect()
    assert _in_generations(kept)
    assert collector.full_passes == 0


async def test_the_major_pass_runs_on_the_loop_when_the_frozen_set_grew() -> None:
    loop = asyncio.get_running_loop()
    collector = FreezingCollector(loop, major_growth=0.01, major_min_s=0.0)
    ran_on: list[int] = []
    plain = collector.major

    def major() -> None:
        ran_on.append(threading.get_ident())
        plain()

    collector.major = major  # type: ignore[method-assign]
    collector.start()
    try:
        node = Node()
        ref = weakref.ref(node)
        gc.collect()  # node frozen; too little growth for a major pass
        del node
        assert not collector._major_due and ref() is not None
        kept = [[i] for i in range(collector._base // 50 + 5000)]  # > 1 % growth
        # a full pass in another thread (automatic passes run in whichever thread
        # allocates): the major pass it makes due runs on the loop's thread
        await asyncio.to_thread(gc.collect)
        for _ in range(200):  # (tried again if a collection elsewhere was under way)
            if collector.major_passes:
                break
            await asyncio.sleep(0.01)
        assert ran_on and set(ran_on) == {threading.get_ident()}
        assert ref() is None and collector.major_passes == 1
        assert len(kept) > 5000
    finally:
        collector.stop()


async def test_a_major_pass_blocked_by_another_thread_s_collection_is_tried_again() -> None:
    """CPython skips ``gc.collect()`` while another thread's collection is under way (here
    held in its callbacks, as a finalizer or callback can hold it): the major pass must
    not count as done, and runs again once it can."""
    collector = FreezingCollector(asyncio.get_running_loop(), major_min_s=3600.0)
    collector.start()
    held, release = threading.Event(), threading.Event()
    helper: list[threading.Thread] = []

    def hold(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and threading.current_thread() in helper and not held.is_set():
            held.set()
            release.wait(10)

    gc.callbacks.insert(0, hold)
    try:
        node = Node()
        ref = weakref.ref(node)
        gc.collect()  # node frozen
        del node
        helper.append(threading.Thread(target=gc.collect))
        helper[0].start()
        assert await asyncio.to_thread(held.wait, 10)
        assert not collector.major()  # the helper's collection is still under way
        assert collector._major_due and collector.major_passes == 0 and ref() is not None
        release.set()
        await asyncio.to_thread(helper[0].join, 10)
        for _ in range(200):
            if collector.major_passes:
                break
            await asyncio.sleep(0.01)
        assert collector.major_passes == 1 and ref() is None and not collector._major_due
    finally:
        release.set()
        gc.callbacks.remove(hold)
        collector.stop()


def test_without_a_loop_the_owner_runs_the_major_pass() -> None:
    collector = FreezingCollector(major_growth=0.01, major_min_s=0.0)
    collector.start()
    try:
        kept = [[i] for i in range(collector._base // 50 + 5000)]
        gc.collect()
        assert collector._major_due
        assert collector.major_if_due()
        assert collector.major_passes == 1 and not collector.major_if_due()
        assert len(kept) > 5000
    finally:
        collector.stop()


async def test_a_host_runs_the_policy_while_it_runs(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config")
    host = await start_host(paths, Settings(provider="offline"))
    try:
        assert host.collector is not None
        assert host.collector._on_gc in gc.callbacks
        kept = [[i] for i in range(1000)]
        gc.collect()
        assert not _in_generations(kept) and host.collector.full_passes >= 1
    finally:
        await host.stop()
    assert host.collector._on_gc not in gc.callbacks


def test_the_engine_worker_runs_the_policy_while_it_serves(tmp_path: Path) -> None:
    """The offline engine's worker (``serve``, run here in the test's main thread with
    the host's end of the pipe in a thread): its full passes freeze their survivors
    while it answers, and the policy is gone when it stops."""
    (tmp_path / "config").mkdir()
    spec = EngineSpec(data_dir=str(tmp_path), knowledge_dir=None,
                      config_dir=str(tmp_path / "config"), max_results=5)
    host, worker = multiprocessing.Pipe()
    seen: dict[str, Any] = {}

    def host_side() -> None:
        try:
            seen["ready"] = pickle.loads(host.recv_bytes())[0]
            seen["policies"] = sum(isinstance(getattr(cb, "__self__", None), FreezingCollector)
                                   for cb in gc.callbacks)
            kept = [[i] for i in range(1000)]
            gc.collect()
            seen["frozen"] = not _in_generations(kept)
            request = TurnRequest(instructions="", history=(), tools=[], session_id="s1")
            host.send_bytes(pickle.dumps(
                (request, 0, [CustomerLine(text="How long does a refund take?")], 0.0, 0.03)))
            seen["answer"] = pickle.loads(host.recv_bytes())
        finally:
            host.send_bytes(pickle.dumps(None))

    thread = threading.Thread(target=host_side)
    thread.start()
    previous = signal.getsignal(signal.SIGINT)
    try:
        serve(worker, spec)
    finally:
        signal.signal(signal.SIGINT, previous)
        thread.join(30)
    assert seen["ready"] == "ready" and seen["policies"] == 1 and seen["frozen"]
    assert seen["answer"][0] == "ok" and seen["answer"][1]  # a draft's steps
    assert not any(isinstance(getattr(cb, "__self__", None), FreezingCollector)
                   for cb in gc.callbacks)


def test_freezing_after_every_pass() -> None:
    collector = FreezingCollector(freeze_after=0)
    collector.start()
    try:
        node = Node()
        ref = weakref.ref(node)
        del node  # dead before the next pass: a young pass collects it
        kept = [[i] for i in range(1000)]
        gc.collect(0)
        assert ref() is None
        assert not _in_generations(kept)  # the next passes do not scan it
        assert len(gc.get_objects(generation=1)) + len(gc.get_objects(generation=2)) < 100
    finally:
        collector.stop()


def test_freezing_after_generation_1_passes_too() -> None:
    collector = FreezingCollector(freeze_after=1)
    collector.start()
    try:
        kept = [[i] for i in range(1000)]
        gc.collect(1)
        assert not _in_generations(kept) and collector.full_passes == 0
        more = [[i] for i in range(1000)]
        gc.collect(0)  # younger passes are left alone
        assert _in_generations(more)
    finally:
        collector.stop()
