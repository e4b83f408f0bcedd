"""The one waiter: poll a state function until it reports a terminal state or a deadline passes.

Used by every launcher (local processes, Kubernetes custom resources, Vertex jobs) so deadline, interval and
progress handling exist once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

S = TypeVar("S")


class DeadlineExceeded(TimeoutError):
    """The awaited resource did not reach a terminal state before its deadline."""


@dataclass(frozen=True)
class Clock:
    """Injectable time source so tests run waits instantly."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


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


def wait_for(
    poll: Callable[[], S],
    done: Callable[[S], bool],
    *,
    timeout_s: float,
    interval_s: float = 5.0,
    what: str = "resource",
    on_poll: Callable[[S], None] | None = None,
    clock: Clock | None = None,
) -> S:
    """Call ``poll`` every ``interval_s`` until ``done(state)``; return that state or raise ``DeadlineExceeded``."""
    clock = clock or Clock()
    deadline = clock.now() + timeout_s
    while True:
        state = poll()
        if on_poll is not None:
            on_poll(state)
        if done(state):
            return state
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise DeadlineExceeded(f"{what} not finished after {timeout_s:.0f}s; last state: {state}")
        clock.sleep(min(interval_s, remaining))
