"""CPU per plugin from the threads each plugin registered, inside this test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

import pmon.collect.threads
from pmon.collect.threads import ThreadRegistry


def spin(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


class Worker:
    """A thread that registers itself for a plugin, runs ``work``, then waits to be released."""

    def __init__(self, registry: ThreadRegistry, plugin_id: str, work: Callable[[], None]) -> None:
        self.registered = threading.Event()
        self.done = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(registry, plugin_id, work), daemon=True)
        self.thread.start()
        assert self.registered.wait(5)

    def _run(self, registry: ThreadRegistry, plugin_id: str, work: Callable[[], None]) -> None:
        registry.register(plugin_id)
        self.registered.set()
        work()
        self.done.set()
        self.release.wait(10)

    def finish(self) -> None:
        self.release.set()
        self.thread.join(5)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.finish()


@pytest.fixture(params=["thread clocks", "psutil threads"])
def registry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ThreadRegistry:
    if request.param == "psutil threads":
        monkeypatch.setattr(pmon.collect.threads, "_HAS_THREAD_CLOCKS", False)
    return ThreadRegistry()


def test_a_busy_plugin_thread_and_an_idle_one_are_told_apart(registry: ThreadRegistry, workers: list[Worker]) -> None:
    busy = Worker(registry, "busy", lambda: spin(1.0))
    idle = Worker(registry, "idle", lambda: time.sleep(1.0))
    workers += [busy, idle]
    registry.sample()

    assert busy.done.wait(10) and idle.done.wait(10)
    figures = registry.sample()

    assert figures["busy"] > 50
    assert figures["idle"] < 10


def test_threads_of_one_plugin_are_summed(registry: ThreadRegistry, workers: list[Worker]) -> None:
    registry.sample()
    workers += [Worker(registry, "pair", lambda: spin(0.4)) for _ in range(2)]
    workers.append(Worker(registry, "solo", lambda: spin(0.4)))
    assert all(worker.done.wait(10) for worker in workers)

    figures = registry.sample()

    assert figures["pair"] > 1.5 * figures["solo"] > 0, "each thread spun the same CPU time"
    assert registry.plugins() == {"pair": 2, "solo": 1}


def test_the_block_unregisters_and_its_cpu_still_counts_once(registry: ThreadRegistry) -> None:
    registry.sample()
    with registry.registered("job"):
        assert registry.plugins() == {"job": 1}
        spin(0.3)
    assert registry.plugins() == {}

    first = registry.sample()
    assert first["job"] > 0
    assert registry.sample() == {}


def test_register_returns_a_handle_that_unregisters(registry: ThreadRegistry) -> None:
    with registry.register("outer"):
        handle = registry.register("outer")
        handle.unregister()
        handle.unregister()
        assert registry.plugins() == {"outer": 1}, "a nested registration leaves the outer one in place"
    assert registry.plugins() == {}


def test_a_thread_that_ended_is_dropped(registry: ThreadRegistry) -> None:
    thread = threading.Thread(target=lambda: (registry.register("short"), spin(0.05)))
    thread.start()
    thread.join()

    registry.sample()

    assert registry.plugins() == {}
    assert registry.sample() == {}


def test_a_thread_registered_by_another_thread_is_counted(registry: ThreadRegistry) -> None:
    go, spun, release = threading.Event(), threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: (go.wait(5), spin(0.5), spun.set(), release.wait(10)), daemon=True)
    thread.start()
    registry.sample()
    registration = registry.register("remote", thread)
    go.set()
    assert spun.wait(10)
    registration.unregister()
    release.set()
    thread.join(10)

    assert registry.sample()["remote"] > 20


def test_bad_plugin_ids_and_unstarted_threads_are_refused(registry: ThreadRegistry) -> None:
    with pytest.raises(ValueError, match="plugin_id"):
        registry.register("no spaces allowed")
    with pytest.raises(ValueError, match="has not started"):
        registry.register("fine", threading.Thread(target=lambda: None))
    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    with pytest.raises(ValueError, match="has already finished"):
        registry.register("fine", finished)
    assert registry.plugins() == {}


def test_registering_from_many_threads_while_sampling_is_safe(registry: ThreadRegistry) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn(index: int) -> None:
        try:
            while not stop.is_set():
                with registry.registered(f"plugin-{index % 3}"):
                    spin(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        registry.sample()
        time.sleep(0.005)
    stop.set()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert set(registry.sample()) <= {"plugin-0", "plugin-1", "plugin-2"}
    assert registry.plugins() == {}
