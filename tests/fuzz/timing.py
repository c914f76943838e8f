"""How a parser's time grows with its input: a ratio of best times, robust to a loaded machine.

An absolute limit in milliseconds passes on a quiet machine and fails on a busy one (or hides a quadratic
parser on a fast one); the ratio between an input of size n and one of 4n does neither: linear work gives
about 4, quadratic 16. Each size is timed a few times, interleaved, and the best times compared: load on
a 2-core machine shared with other test runs only ever adds time, so the best run of each size is the
closest to its cost, and a burst during one run does not decide the ratio.
"""

from __future__ import annotations

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
    """Best seconds of parse(make(n)) and of parse(make(4 * n)), runs interleaved."""
    small, large = make(n), make(4 * n)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        times[0].append(seconds(lambda: parse(small)))
        times[1].append(seconds(lambda: parse(large)))
    return min(times[0]), min(times[1])


def best_growth(
    parse: Callable[[bytes], object], make: Callable[[int], bytes], n: int, tries: int = 2
) -> tuple[float, float]:
    """growth() measured up to `tries` times, stopping at a linear one: a burst of load that outlasts a
    whole measurement cannot fail a linear parser, while a quadratic one (~16) fails every try."""
    measured = growth(parse, make, n)
    for _ in range(tries - 1):
        if ratio(*measured) < LINEAR:
            break
        measured = min(measured, growth(parse, make, n), key=lambda pair: ratio(*pair))
    return measured
