"""The one way to launch and wait: every long-running job the catalog starts (a training job on any backend, each
tuning trial, a Katib Experiment, a canary rollout's InferenceService) is a ``RunningJob`` that declares how it is
waited on, and is started and awaited through this module.

- A ``RunningJob`` declares its ``WaitPolicy`` (poll interval, deadline with grace, which errors are transient,
  how long transient errors are tolerated, the backoff) and what happens on success and failure (``release``)
  and on SIGTERM or the deadline (``cancel``).
- ``Watch`` polls one job once at a time (so one loop can watch many, as the tuner does); ``wait`` is the loop for
  one job, under the SIGTERM handler.
- ``start_or_adopt`` gives retries that can succeed: a retried step adopts its job while it is running or has
  succeeded, and starts a fresh attempt (``<name>-a2``, ...) when the earlier one failed or was cancelled, so
  there is never more than one live job per step; the attempt history is returned for the step's logs.
  A SIGTERM that arrives while the job is being created is held until the create returns, then cancels it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from components._core.signals import Terminated, deferred_sigterm, on_sigterm
from components._core.waiting import Clock, DeadlineExceeded

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 20


class JobPhase(StrEnum):
    """Lifecycle of a launched job."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        """The job has ended (it will not change any more)."""
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED)

    @property
    def live(self) -> bool:
        """The job holds resources and may still succeed."""
        return self in (JobPhase.PENDING, JobPhase.RUNNING)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job's state."""

    phase: JobPhase
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def never_transient(err: BaseException) -> bool:
    """No error is transient (local processes)."""
    return False


@dataclass(frozen=True)
class WaitPolicy:
    """How a job is waited on: poll every ``poll_interval_s``; give up (cancelling the job) ``deadline_s`` after
    waiting starts; retry errors ``transient`` accepts with exponential backoff from ``backoff_initial_s`` up to
    ``backoff_max_s``, for at most ``transient_budget_s`` of consecutive errors."""

    poll_interval_s: float
    deadline_s: float
    transient: Callable[[BaseException], bool] = never_transient
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    transient_budget_s: float = 900.0

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive transient error."""
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, failures - 1)))


class RunningJob(ABC):
    """Handle on one launched job (one attempt of a step)."""

    name: str
    attempt: int = 1
    outlives_step: bool = True  # a retried step (a new process) can adopt it; False for local processes

    @property
    @abstractmethod
    def policy(self) -> WaitPolicy:
        """How this job is waited on."""

    @abstractmethod
    def status(self) -> JobStatus:
        """Current state (one API call or process check; never blocks long)."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the job and release what it holds (SIGTERM, deadline); safe to call twice."""

    @abstractmethod
    def logs(self) -> str:
        """Logs collected so far (all ranks / pods / trials), for the step's logs artifact."""

    def release(self, status: JobStatus) -> None:  # noqa: B027 - optional hook: most jobs keep what they made
        """What happens once the job ended with ``status`` (e.g. delete it on success); default: nothing."""


def call_with_retry(fn: Callable[[], T], policy: WaitPolicy, *, what: str, clock: Clock | None = None) -> T:
    """``fn()``, retried while it raises errors ``policy.transient`` accepts (bounded backoff and budget)."""
    clock = clock or Clock()
    started, failures = clock.now(), 0
    while True:
        try:
            return fn()
        except Exception as err:
            if not policy.transient(err):
                raise
            failures += 1
            delay = policy.backoff(failures)
            if clock.now() - started + delay > policy.transient_budget_s:
                raise
            log.warning("%s: transient error (%d in a row), retrying in %.0fs: %s", what, failures, delay, err)
            clock.sleep(delay)


class Watch:
    """Polls one job, one ``poll()`` at a time: transient errors back off, a passed deadline cancels the job,
    a terminal status runs the job's ``release`` hook."""

    def __init__(self, job: RunningJob, *, clock: Clock | None = None,
                 on_status: Callable[[JobStatus], None] | None = None) -> None:
        self.job, self.policy, self.clock, self.on_status = job, job.policy, clock or Clock(), on_status
        self.started = self.clock.now()
        self.deadline = self.started + self.policy.deadline_s
        self.next_at = self.started
        self.last: JobStatus | None = None
        self._failures = 0
        self._failing_since: float | None = None

    def poll(self) -> JobStatus | None:
        """Read the status once; the terminal status when the job ended, else None. Raises
        ``DeadlineExceeded`` (after cancelling the job) past the deadline, and non-transient errors (or
        transient ones past their budget) as they are."""
        now = self.clock.now()
        try:
            status = self.job.status()
        except Exception as err:
            if not self.policy.transient(err):
                raise
            self._failures += 1
            self._failing_since = self._failing_since if self._failing_since is not None else now
            if now - self._failing_since >= self.policy.transient_budget_s:
                raise
            delay = self.policy.backoff(self._failures)
            log.warning("status of %s: transient error (%d in a row), next try in %.0fs: %s",
                        self.job.name, self._failures, delay, err)
            self._check_deadline(now)
            self.next_at = now + delay
            return None
        self._failures, self._failing_since, self.last = 0, None, status
        if self.on_status is not None:
            self.on_status(status)
        if status.phase.terminal:
            self._release(status)
            return status
        self._check_deadline(now)
        self.next_at = now + self.policy.poll_interval_s
        return None

    def _check_deadline(self, now: float) -> None:
        if now < self.deadline:
            return
        log.error("%s did not finish within %.0fs: cancelling it", self.job.name, self.policy.deadline_s)
        self.job.cancel()
        last = self.last.phase.value if self.last else "unknown"
        said = f": {self.last.message}" if self.last and self.last.message else ""
        raise DeadlineExceeded(f"{self.job.name} did not finish within {self.policy.deadline_s:.0f}s "
                               f"(last phase {last}{said}) and was cancelled")

    def _release(self, status: JobStatus) -> None:
        try:
            self.job.release(status)
        except Exception as err:  # the job's outcome must win over a cleanup error
            log.warning("cleanup of %s after %s failed: %s", self.job.name, status.phase.value, err)

    def sleep_until_due(self) -> None:
        """Sleep until the next poll is due."""
        self.clock.sleep(max(0.0, self.next_at - self.clock.now()))


def wait(job: RunningJob, *, clock: Clock | None = None,
         on_status: Callable[[JobStatus], None] | None = None) -> JobStatus:
    """Wait until ``job`` ends and return its terminal status. SIGTERM, Ctrl-C and the deadline cancel the job
    (``Terminated`` / ``KeyboardInterrupt`` / ``DeadlineExceeded``); other errors leave it running for a retried
    step to adopt, unless it cannot outlive this process (``outlives_step``), then it is cancelled too."""
    watch = Watch(job, clock=clock, on_status=on_status)

    def cancel_on_sigterm() -> None:
        log.error("%s cancelled: received SIGTERM", job.name)  # Terminated exits quietly: say why here
        job.cancel()

    with on_sigterm(cancel_on_sigterm):
        try:
            while True:
                status = watch.poll()
                if status is not None:
                    return status
                watch.sleep_until_due()
        except KeyboardInterrupt:
            job.cancel()
            raise
        except Exception:
            if not job.outlives_step:
                job.cancel()
            raise


def suffixed(base: str, suffix: str, max_len: int = 63) -> str:
    """``base + suffix`` within ``max_len`` characters: the readable front of ``base`` is shortened, its last
    ``-``-separated part (the hash of a deterministic name) is kept."""
    if len(base) + len(suffix) <= max_len:
        return base + suffix
    front, _, digest = base.rpartition("-")
    keep = max_len - len(suffix) - len(digest) - 1
    if not front or keep < 1:
        raise ValueError(f"cannot fit {base!r} + {suffix!r} into {max_len} characters")
    return f"{front[:keep].rstrip('-')}-{digest}{suffix}"


def attempt_name(base: str, attempt: int, max_len: int = 63) -> str:
    """The name of attempt ``attempt`` of the job named ``base``: ``base`` itself for the first, else
    ``base-a<N>`` (shortened by ``suffixed`` to fit ``max_len``)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return base if attempt == 1 else suffixed(base, f"-a{attempt}", max_len)


@dataclass(frozen=True)
class Attempt:
    """One attempt of a step as seen when the step (re)started: its name, state and what the step did with it."""

    number: int
    name: str
    phase: str
    message: str
    action: str  # "ended before", "adopted", "created", "cancelled (a second live attempt)"

    def line(self) -> str:
        why = f": {self.message.splitlines()[0][:300]}" if self.message else ""
        return f"attempt {self.number} {self.name}: {self.phase}, {self.action}{why}"


@dataclass(frozen=True)
class Launch:
    """The job a step waits on and the attempt history that led to it."""

    job: RunningJob
    history: tuple[Attempt, ...]

    @property
    def adopted(self) -> bool:
        """The job was found running (or succeeded) rather than created now."""
        return self.history[-1].action == "adopted"

    def history_text(self) -> str:
        """The history as lines for the step's logs artifact."""
        return "".join(f"== {a.line()}\n" for a in self.history)


def start_or_adopt(existing: Sequence[RunningJob], create: Callable[[int], RunningJob], *,
                   clock: Clock | None = None, what: str = "job") -> Launch:
    """Adopt the newest of ``existing`` (the step's earlier attempts) that is live or succeeded; otherwise call
    ``create(n)`` for attempt ``n`` = one past the highest seen. Older live attempts beyond the newest are
    cancelled, so one step never has two live jobs. A SIGTERM during ``create`` is held until it returns, then
    cancels what was created and raises ``Terminated``."""
    history: list[Attempt] = []
    keep: RunningJob | None = None
    for job in sorted(existing, key=lambda j: j.attempt, reverse=True):
        status = call_with_retry(job.status, job.policy, what=f"status of {job.name}", clock=clock)
        if keep is None and (status.phase.live or status.phase is JobPhase.SUCCEEDED):
            keep, action = job, "adopted"
        elif status.phase.live:
            job.cancel()
            action = "cancelled (a second live attempt)"
        else:
            action = "ended before"
        history.append(Attempt(job.attempt, job.name, status.phase.value, status.message, action))
    history.reverse()
    if keep is not None:
        log.info("adopting %s %s (attempt %d)", what, keep.name, keep.attempt)
        return Launch(keep, tuple(history))
    number = 1 + max((j.attempt for j in existing), default=0)
    if number > MAX_ATTEMPTS:
        raise RuntimeError(f"{what}: {number - 1} attempts already ended without success; giving up")
    with deferred_sigterm() as term:
        job = create(number)
    if term.fired:
        log.warning("SIGTERM arrived while %s %s was being created: cancelling it", what, job.name)
        job.cancel()
        raise Terminated(f"received SIGTERM while creating {job.name}; it was cancelled")
    history.append(Attempt(number, job.name, JobPhase.PENDING.value, "", "created"))
    log.info("created %s %s (attempt %d)", what, job.name, number)
    return Launch(job, tuple(history))
