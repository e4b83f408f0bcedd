"""An in-memory ``VertexJobClient``: jobs with Vertex's states, labels and cancellation, plus fault injection."""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from components.training.vertex import JobInfo
from tests.fakes.faults import Faults
from tests.fakes.k8s import SimulatedCrash

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


@dataclass
class FakeJob:
    display_name: str
    pools: list[dict[str, Any]]
    labels: dict[str, str]
    timeout_s: int
    state: str = "JOB_STATE_QUEUED"
    error: str = ""
    cancel_requests: int = 0
    script: deque[tuple[str, str]] = field(default_factory=deque)


class FakeVertexJobClient(Faults):
    """Resource names ``projects/p/locations/l/customJobs/<n>``; ``script`` advances a job's state per read;
    ``cancel`` moves a live job to CANCELLING, then CANCELLED on the next read (as Vertex does)."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, FakeJob] = {}
        self._ids = itertools.count(1000)
        self._crash_next = False
        self._scripts: dict[str, deque[tuple[str, str]]] = defaultdict(deque)
        self.on_create: list[Any] = []  # callables run after a job is stored, before create returns

    def crash_after_create(self) -> None:
        """The next create reaches Vertex, then the caller dies with ``SimulatedCrash``."""
        self._crash_next = True

    def script(self, resource_name: str, *states: str | tuple[str, str]) -> None:
        for s in states:
            self.jobs[resource_name].script.append((s, "") if isinstance(s, str) else s)

    def create(
        self, display_name: str, worker_pool_specs: list[dict[str, Any]], *, labels: dict[str, str], timeout_s: int
    ) -> str:
        self._fault("create")
        name = f"projects/p/locations/us-central1/customJobs/{next(self._ids)}"
        self.jobs[name] = FakeJob(display_name, worker_pool_specs, dict(labels), timeout_s)
        for hook in self.on_create:
            hook(name)
        if self._crash_next:
            self._crash_next = False
            raise SimulatedCrash("died right after submit")
        return name

    def find(self, labels: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
        self._fault("find")
        hits = [(n, dict(j.labels)) for n, j in self.jobs.items() if labels.items() <= j.labels.items()]
        return sorted(hits, reverse=True)  # newest first

    def get(self, resource_name: str) -> JobInfo:
        self._fault("get")
        job = self.jobs[resource_name]
        if job.state == "JOB_STATE_CANCELLING":
            job.state = "JOB_STATE_CANCELLED"
        elif job.script and job.state not in TERMINAL:
            job.state, job.error = job.script.popleft()
        return JobInfo(job.state, job.error)

    def cancel(self, resource_name: str) -> None:
        self._fault("cancel")
        job = self.jobs[resource_name]
        job.cancel_requests += 1
        if job.state not in TERMINAL:
            job.state = "JOB_STATE_CANCELLING"
