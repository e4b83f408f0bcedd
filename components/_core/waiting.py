"""Time for waits: an injectable clock, the deadline error, and ``wait_for`` for short waits (an object's deletion);
jobs are waited on through ``components._core.jobs``."""

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
