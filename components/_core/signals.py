"""The one SIGTERM mechanism: KFP stops a step by SIGTERM (run terminated, pod deleted, deadline), and every
launcher must then cancel or delete what it started before exiting."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class Terminated(SystemExit):
    """The step was told to stop; its cleanup ran. Exits with the conventional code 143."""

    def __init__(self, message: str = "received SIGTERM") -> None:
        super().__init__(128 + signal.SIGTERM)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextmanager
def on_sigterm(cleanup: Callable[[], object] | None = None) -> Iterator[None]:
    """While active, SIGTERM runs ``cleanup`` (if any) and raises ``Terminated``; the old handler is restored.

    Signal handlers exist only in the main thread; elsewhere this is a no-op (logged).
    """
    if threading.current_thread() is not threading.main_thread():
        log.warning("not in the main thread: SIGTERM cleanup not installed")
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    state = {"cleaning": False, "cleaned": False}

    def handle(signum: int, frame: Any) -> None:
        if state["cleaning"]:  # a second SIGTERM while cleaning up: keep cleaning up
            return
        if not state["cleaned"]:
            state["cleaning"] = True
            log.warning("SIGTERM received: cleaning up")
            try:
                if cleanup is not None:
                    cleanup()
            except Exception:  # still exit as terminated; the error is in the step's log
                log.exception("cleanup on SIGTERM failed")
            finally:
                state["cleaning"], state["cleaned"] = False, True
        # Raised on every SIGTERM after the cleanup: Python drops an exception raised while a finalizer or
        # weakref callback runs, and a later SIGTERM must still stop the step.
        raise Terminated()

    signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class HeldSignal:
    """Whether a SIGTERM arrived while it was held."""

    fired: bool = False


@contextmanager
def deferred_sigterm() -> Iterator[HeldSignal]:
    """Hold SIGTERM while the block runs (e.g. while a job is created, so the create completes and what it made
    can then be cancelled); ``fired`` says whether one arrived. If the block raises after a SIGTERM arrived,
    ``Terminated`` is raised from that error. The old handler is restored on exit."""
    held = HeldSignal()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.getsignal(signal.SIGTERM)

    def hold(signum: int, frame: Any) -> None:
        held.fired = True
        log.warning("SIGTERM received: held until the current create returns")

    signal.signal(signal.SIGTERM, hold)
    try:
        yield held
    except Exception as err:
        if held.fired:
            raise Terminated(f"received SIGTERM; then {type(err).__name__}: {err}") from err
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
