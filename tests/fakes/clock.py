"""A manual clock for tests and benchmarks: waits finish instantly."""

from __future__ import annotations

from collections.abc import Callable

from components._core.waiting import Clock


class ManualClock:
    """A time source that moves only when slept on, so waits finish instantly (tests, simulations, benchmarks).
    ``on_sleep(n)`` runs after the n-th sleep (e.g. to send SIGTERM on the n-th poll)."""

    def __init__(self, on_sleep: Callable[[int], object] | None = None) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))

    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep)
