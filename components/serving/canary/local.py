"""The local serving backend (the embedded default): real KServe model servers on loopback, one per model, behind
one local endpoint (``components.serving.router``) that splits live traffic between stable and candidate.

Everything lives under ``<home>/<service>/``: ``state.json`` (the stable and candidate models with their server
pids and ports, the router's), ``routes.json`` (what the router reads), ``models/<version>/`` (a copy of each
deployed model, so serving does not depend on a pipeline run's folders), ``logs/``. The processes outlive the
step that started them: after ``catalog run training`` the promoted model keeps serving; ``catalog serve``
restarts what died, ``--status`` shows it, ``--stop`` ends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from components._core.artifacts import filesystem, is_local, local_path, write_json
from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy
from components.serving.canary.backend import RolloutFailure, ServingBackend, Which
from components.serving.processes import free_port, launch, start_model_server, stop_pid
from components.serving.router import VERSION_HEADER
from components.serving.target import DeployConfig, Served

ROUTER_MODULE = "components.serving.router"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):  # our own child that exited: reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def copy_model(model_uri: str, dest: Path) -> str:
    """Copy a model folder (local or fsspec URI) to ``dest`` once; returns the local copy's path."""
    if (dest / "model_card.json").exists():
        return str(dest)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    if is_local(model_uri):
        shutil.copytree(local_path(model_uri), staging)
    else:
        fs, path = filesystem(model_uri)
        fs.get(path.rstrip("/") + "/", str(staging), recursive=True)
    staging.rename(dest)
    return str(dest)


class LocalReadiness(RunningJob):
    """The candidate's server coming up: ready (after its warm-up) → routed at its percent → succeeded; the
    process dying fails it; cancelling rolls the canary back."""

    def __init__(self, backend: LocalServing, timeout_s: float) -> None:
        self.backend, self.name = backend, f"{backend.cfg.service}-canary"
        self._policy = WaitPolicy(poll_interval_s=0.2, deadline_s=timeout_s)

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

    def status(self) -> JobStatus:
        cand = self.backend.state().get("candidate")
        if not cand:
            return JobStatus(JobPhase.CANCELLED, "the canary was rolled back")
        if not _alive(cand.get("pid")):
            log = self.backend.log_tail(cand["version"])
            return JobStatus(JobPhase.FAILED, f"model server of {cand['version']} exited: {log[-600:]}")
        try:
            ready = self.backend.http.get(f"{_url(cand)}/v2/models/{self.backend.cfg.service}/ready").status_code
        except httpx.TransportError:
            return JobStatus(JobPhase.PENDING, "model server not answering yet")
        if ready != 200:
            return JobStatus(JobPhase.PENDING, f"model not ready ({ready})")
        routes = self.backend.publish_routes()
        return JobStatus(JobPhase.SUCCEEDED, f"ready; routed {routes['percent']}%", {"routes": routes})

    def cancel(self) -> None:
        self.backend.rollback()

    def logs(self) -> str:
        cand = self.backend.state().get("candidate") or {}
        return self.backend.log_tail(cand.get("version", ""))


def _url(entry: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{entry['port']}"


class ServerAnswer(RuntimeError):
    """A model server answered with an error status; the message carries its body (it names the problem)."""


def _ok(answer: httpx.Response) -> httpx.Response:
    if answer.is_error:
        raise ServerAnswer(f"HTTP {answer.status_code}: {answer.text[:300]}")
    return answer


class LocalServing(ServingBackend):
    """Local model servers behind the local endpoint (see the module docstring)."""

    def __init__(self, cfg: DeployConfig, http: httpx.Client | None = None, run_id: str = "", task: str = "") -> None:
        self.cfg = cfg
        self.run_id, self.task = run_id, task
        self.dir = cfg.local.root() / cfg.service
        self.http = http or httpx.Client(timeout=30.0)
        self._seen: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, cfg: DeployConfig, **clients: Any) -> Self:
        return cls(cfg, **clients)

    # -- state
    def state(self) -> dict[str, Any]:
        """The service's state file (empty before the first deployment)."""
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self, state: dict[str, Any]) -> None:
        write_json(state, str(self.dir / "state.json"))

    def log_tail(self, version: str, chars: int = 4000) -> str:
        """The end of a model server's log."""
        path = self.dir / "logs" / f"{version}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def endpoint(self) -> str:
        """The local endpoint's URL (the router), or '' when none runs."""
        router = self.state().get("router") or {}
        return f"http://127.0.0.1:{router['port']}" if router.get("port") and _alive(router.get("pid")) else ""

    def stable(self) -> Served | None:
        entry = self.state().get("stable")
        return Served.from_dict(entry) if entry else None

    def canary(self) -> Served | None:
        entry = self.state().get("candidate")
        return Served.from_dict(entry) if entry else None

    # -- processes
    def _start_server(self, served: Served) -> dict[str, Any]:
        copy = copy_model(served.model_uri, self.dir / "models" / served.version)
        server = start_model_server(copy, name=self.cfg.service, version=served.version,
                                    log_path=self.dir / "logs" / f"{served.version}.log", die_with_parent=False)
        return {**served.to_dict(), "model_uri": copy, "source_uri": served.model_uri, "pid": server.pid,
                "port": server.port, "deployed_by": {"run_id": self.run_id, "task": self.task}}

    def _ensure_router(self, state: dict[str, Any]) -> None:
        router = state.get("router") or {}
        if _alive(router.get("pid")):
            return
        port = router.get("port") or self.cfg.local.port or free_port()
        proc = launch([ROUTER_MODULE, "--routes", str(self.dir / "routes.json"), "--port", str(port)],
                      name="router", port=port, log_path=self.dir / "logs" / "router.log", die_with_parent=False)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get(f"http://127.0.0.1:{port}/router/status").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not proc.alive() or time.monotonic() > deadline:
                raise RolloutFailure(f"local endpoint on port {port} did not start: {proc.log_tail()}")
            time.sleep(0.05)
        state["router"] = {"pid": proc.pid, "port": port}

    def publish_routes(self) -> dict[str, Any]:
        """Point the endpoint at the current stable and candidate servers; returns the routes written."""
        state = self.state()
        routes = {"stable": self._route(state.get("stable")), "candidate": self._route(state.get("candidate")),
                  "percent": int(state.get("percent", 0)) if state.get("candidate") else 0}
        write_json(routes, str(self.dir / "routes.json"))
        self._seen.append({"routes": routes, "at": time.time()})
        return routes

    @staticmethod
    def _route(entry: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"url": _url(entry), "version": entry["version"]} if entry else None

    # -- the rollout
    def deploy_canary(self, candidate: Served, percent: int) -> RunningJob:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self.state()
        pending = state.get("candidate")
        if pending and pending["version"] == candidate.version and _alive(pending.get("pid")):
            state["percent"] = percent  # a retried step takes over its own canary
        else:
            state["candidate"], state["percent"] = self._start_server(candidate), percent
        self._ensure_router(state)
        self._save(state)
        return LocalReadiness(self, self.cfg.readiness_timeout_s)

    def predict(self, which: Which, rows: Sequence[dict[str, Any]]) -> list[float]:
        entry = self.state().get(which)
        if not entry:
            raise RolloutFailure(f"no {which} model is deployed")
        answer = _ok(self.http.post(f"{_url(entry)}/v1/models/{self.cfg.service}:predict",
                                    json={"instances": list(rows)}))
        return [float(p["probability"]) for p in answer.json()["predictions"]]

    def observed_traffic(self, probe: Sequence[dict[str, Any]]) -> dict[str, float]:
        url = f"{self.endpoint()}/v1/models/{self.cfg.service}:predict"
        counts: dict[str, int] = {}
        for row in probe:
            answer = _ok(self.http.post(url, json={"instances": [row]}))
            version = answer.headers.get(VERSION_HEADER, "")
            counts[version] = counts.get(version, 0) + 1
        total = sum(counts.values())
        return {v: n / total for v, n in sorted(counts.items())} if total else {}

    def promote(self) -> None:
        state = self.state()
        old, state["stable"], state["candidate"], state["percent"] = state.get("stable"), state["candidate"], None, 0
        self._save(state)
        self.publish_routes()
        if old and old.get("pid") != state["stable"].get("pid"):
            stop_pid(int(old["pid"]))

    def rollback(self) -> None:
        state = self.state()
        cand = state.get("candidate")
        state["candidate"], state["percent"] = None, 0
        self._save(state)
        self.publish_routes()
        if cand:
            stop_pid(int(cand["pid"]))
        if not state.get("stable"):  # a failed first deployment: nothing is left to serve
            self.stop()

    def statuses(self) -> list[dict[str, Any]]:
        return list(self._seen)

    # -- catalog serve
    def ensure_serving(self) -> Served | None:
        """Restart the stable model's server and the endpoint if they died (after a reboot); the model serving."""
        state = self.state()
        stable = state.get("stable")
        if not stable:
            return None
        if not _alive(stable.get("pid")):
            fresh = self._start_server(Served.from_dict(stable))
            state["stable"] = {**fresh, "source_uri": stable.get("source_uri", fresh["source_uri"])}
        self._ensure_router(state)
        self._save(state)
        self.publish_routes()
        return Served.from_dict(state["stable"])

    def status(self) -> dict[str, Any]:
        """The endpoint's URL and what serves behind it, with liveness."""
        state = self.state()

        def show(entry: dict[str, Any] | None) -> dict[str, Any] | None:
            return {**entry, "alive": _alive(entry.get("pid"))} if entry else None

        return {"service": self.cfg.service, "endpoint": self.endpoint(),
                "router_alive": _alive((state.get("router") or {}).get("pid")),
                "stable": show(state.get("stable")), "candidate": show(state.get("candidate")),
                "percent": state.get("percent", 0)}

    def stop(self) -> None:
        """Stop the endpoint and every model server of the service (the deployed models stay on disk)."""
        state = self.state()
        for key in ("candidate", "stable", "router"):
            entry = state.get(key) or {}
            if entry.get("pid"):
                stop_pid(int(entry["pid"]))
        if state.get("router"):
            state["router"]["pid"] = None  # the port is kept: the endpoint comes back at the same URL
        for key in ("stable", "candidate"):
            if state.get(key):
                state[key]["pid"] = None
        if state:
            self._save(state)
