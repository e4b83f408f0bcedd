"""Fault injection shared by the fake API clients: record each call by method name, and let a test make the next
calls of a method raise an error before they touch any state."""

from __future__ import annotations

from collections import defaultdict, deque


class Faults:
    """Mixin: ``calls`` lists the methods called, in order; ``fail_next`` queues errors per method."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._faults: dict[str, deque[BaseException]] = defaultdict(deque)

    def fail_next(self, method: str, error: BaseException, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` without touching state."""
        self._faults[method].extend([error] * times)

    def _fault(self, method: str) -> None:
        self.calls.append(method)
        if self._faults[method]:
            raise self._faults[method].popleft()
