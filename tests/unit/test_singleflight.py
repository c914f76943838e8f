from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from exporter.sources.host import singleflight as singleflight_module
from exporter.sources.host.singleflight import singleflight


class Slow:
    calls = 0

    def __init__(self, setting: str) -> None:
        self.setting = setting

    @singleflight
    def read(self) -> str:
        type(self).calls += 1
        time.sleep(0.3)
        if self.setting == "broken":
            raise OSError("tool failed")
        return f"state of {self.setting}"


def _concurrently(*readers: Slow) -> list[object]:
    results: list[object] = [None] * len(readers)

    def run(index: int, reader: Slow) -> None:
        try:
            results[index] = reader.read()
        except OSError as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    return results


def test_concurrent_reads_of_the_same_source_run_once() -> None:
    Slow.calls = 0
    results = _concurrently(Slow("a"), Slow("a"), Slow("a"), Slow("b"))
    assert results == ["state of a", "state of a", "state of a", "state of b"]
    assert Slow.calls == 2  # one per configuration


def test_failures_reach_every_waiter_and_nothing_is_kept() -> None:
    Slow.calls = 0
    results = _concurrently(Slow("broken"), Slow("broken"))
    assert all(isinstance(r, OSError) for r in results) and Slow.calls == 1
    with pytest.raises(OSError):
        Slow("broken").read()  # a new read, not a remembered failure
    assert Slow.calls == 2


def test_a_read_is_no_longer_in_flight_when_its_result_is_published(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller arriving between the result and the clean-up got the ended read: older state than its
    own read would give, against the module's promise."""
    in_flight_at_publish: list[int] = []
    publish = Future.set_result

    def watched(future: Future[object], result: object) -> None:
        in_flight_at_publish.append(len(singleflight_module._INFLIGHT))
        publish(future, result)

    monkeypatch.setattr(Future, "set_result", watched)
    Slow.calls = 0
    assert Slow("a").read() == "state of a"
    assert in_flight_at_publish == [0]


def test_a_read_marked_reused_is_used_again_until_max_age_then_read_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crowdsec collector, the firewall collector and the watchlist ask CrowdSec one after another
    in one scrape: one `cscli` run serves them all; a second later, or in the next scrape, it runs again."""
    clock = [500.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(singleflight_module, "_scrape_started", float("-inf"))
    runs: list[str] = []

    class Tool:
        def __init__(self, setting: str) -> None:
            self.setting = setting

        @singleflight_module.reused_for(1.0)
        def read(self) -> str:
            runs.append(self.setting)
            if self.setting == "broken":
                raise OSError("tool failed")
            return f"answer {len(runs)}"

    assert [Tool("a").read() for _ in range(3)] == ["answer 1"] * 3  # three readers, one configuration
    assert Tool("b").read() == "answer 2"  # another configuration reads for itself
    clock[0] += 0.999
    assert Tool("a").read() == "answer 1"
    clock[0] += 0.001
    assert Tool("a").read() == "answer 3"
    for _ in range(2):
        with pytest.raises(OSError):
            Tool("broken").read()  # a failure is not kept
    assert runs == ["a", "b", "a", "broken", "broken"]
    clock[0] += 0.1
    singleflight_module.scrape_started()  # a scrape gets no read that started before it
    assert Tool("a").read() == "answer 6"
    assert Tool("a").read() == "answer 6"
    clock[0] += 5
    Tool("c").read()
    assert len(singleflight_module._RECENT) == 1  # the expired ones went
