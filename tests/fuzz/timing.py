"""How a parser's time grows with its input: a ratio of medians, robust to a loaded machine.

An absolute limit in milliseconds passes on a quiet machine and fails on a busy one (or hides a quadratic
parser on a fast one); the ratio between an input of size n and one of 4n does neither: linear work gives
about 4, quadratic 16. Each size is timed a few times, interleaved, and the medians compared, so a burst
of load on a 2-core machine shared with other test runs skews both sides alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

RUNS = 3
LINEAR = 8.0  # n -> 4n: linear is ~4, quadratic ~16
FLOOR = 0.01  # seconds: below this, allocation and page faults of a fresh 1 MB string dominate a ratio


def seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def ratio(small: float, large: float) -> float:
    """How many times longer the large input took, both floored at FLOOR."""
    return max(large, FLOOR) / max(small, FLOOR)


def growth(parse: Callable[[bytes], object], make: Callable[[int], bytes], n: int) -> tuple[float, float]:
    """Median seconds of parse(make(n)) and of parse(make(4 * n)), runs interleaved."""
    small, large = make(n), make(4 * n)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        times[0].append(seconds(lambda: parse(small)))
        times[1].append(seconds(lambda: parse(large)))
    return statistics.median(times[0]), statistics.median(times[1])
