"""Serving throughput and latency: our predictor against a bare ``kserve.Model`` that returns a constant.

Both run in the same kind of process (``kserve.ModelServer``, HTTP only, one worker, started by
``components.serving.processes``), get the same request bodies (one breast_cancer row: 30 features) from the
same keep-alive httpx client, at concurrency 1 and 8 (threads, one client each), v1 and v2. The runs of the two
servers alternate and repeat; figures are medians over repeats, ratios medians of the paired runs (each run of
ours against the bare run next to it). Latency is per request, client side. The
server's CPU time per request (user + system, from the process) is printed too: on a machine shared with
other work it is the steadier measure of what each server costs, and ``bare CPU / ours CPU`` is the req/s
ratio a dedicated core would give.

``python -m bench serve [--requests N] [--repeats R] [--concurrency 1,8]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import kserve
import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from components.data.breast_cancer import breast_cancer_events
from components.serving.processes import ModelServerProcess, free_port, launch, start_model_server
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.trainer import train

GOAL_RATIO = 0.8
GOAL_P99_MS = 10.0


class ConstantModel(kserve.Model):
    """The baseline: no validation, no model, a constant answer shaped like ours (v1: probability and class per
    row; v2: the ``probability`` and ``class`` outputs), so the comparison measures our work, not the size of
    the answer."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    def start(self) -> None:
        """Ready from construction."""

    def predict(self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
                ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            return InferResponse(response_id=payload.id or "0", model_name=self.name, model_version="0",
                                 infer_outputs=[InferOutput("probability", [1], "FP64", [0.5]),
                                                InferOutput("class", [1], "INT64", [1])])
        return {"predictions": [{"probability": 0.5, "class": 1}]}


def serve_bare(argv: list[str]) -> int:
    """Entry of the baseline's server process: the same server setup as ``components.serving.server``."""
    from components.serving.server import build_server

    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--http-port", type=int, required=True)
    args, _ = p.parse_known_args(argv)
    build_server(ConstantModel(args.name), args.http_port).start([])
    return 0


@dataclass
class Figures:
    """One measured run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # server CPU time per request


def measure(server: ModelServerProcess, url: str, body: bytes, headers: dict[str, str], requests: int,
            concurrency: int) -> Figures:
    """Send ``requests`` POSTs from ``concurrency`` threads, each with its own keep-alive client."""
    import psutil

    process = psutil.Process(server.pid)
    per_worker = max(1, requests // concurrency)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    clients = [httpx.Client(timeout=30.0) for _ in range(concurrency)]
    for client in clients:  # open every connection before the clock starts
        client.post(url, content=body, headers=headers)
    barrier = threading.Barrier(concurrency + 1)

    def work(i: int) -> None:
        client, own = clients[i], latencies[i]
        barrier.wait()
        for _ in range(per_worker):
            t0 = time.perf_counter()
            r = client.post(url, content=body, headers=headers)
            own.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    cpu0 = process.cpu_times()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu1 = process.cpu_times()
    for client in clients:
        client.close()
    lat = np.concatenate([np.array(x) for x in latencies]) * 1000
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return Figures(len(lat) / elapsed, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), sum(errors),
                   cpu / len(lat) * 1e6)


def bodies(row: dict[str, float]) -> dict[str, tuple[str, bytes]]:
    """Per protocol: the path suffix and the JSON body of one row (v2 with a request id)."""
    import orjson

    v2: dict[str, Any] = {"id": "bench", "inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
                                                    for k, v in row.items()]}
    return {"v1": (":predict", orjson.dumps({"instances": [row]})), "v2": ("/infer", orjson.dumps(v2))}


def url_of(server: ModelServerProcess, protocol: str, suffix: str) -> str:
    return f"{server.url}/{protocol}/models/{server.name}{suffix}"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    """Print req/s, p50 and p99 per server, protocol and concurrency, then the ratio lines."""
    p = argparse.ArgumentParser(prog="bench serve", description=__doc__)
    p.add_argument("--requests", type=int, default=1000, help="requests per measured run")
    p.add_argument("--repeats", type=int, default=5, help="alternating runs per server and setting")
    p.add_argument("--concurrency", default="1,8", help="comma-separated client concurrencies")
    p.add_argument("--model-uri", default=None, help="a trained model folder (default: train a small one)")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    headers = {"content-type": "application/json"}
    print(f"before: {load_line()}")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        df = breast_cancer_events()
        model_uri = args.model_uri
        if model_uri is None:
            df.write_parquet(f"{tmp}/bc.parquet")
            train(TrainerConfig.parse({"max_epochs": 5, "keep_checkpoints": 1}), f"{tmp}/bc.parquet",
                  f"{tmp}/run", DistEnv())
            model_uri = f"{tmp}/run/model"
        row = df.drop("entity_id", "event_timestamp", "label").row(0, named=True)
        port = free_port()
        with start_model_server(model_uri, name="ours", log_path=f"{tmp}/ours.log") as ours, \
                launch(["bench.serve", "--bare-server", "--name", "bare", "--http-port", str(port)], name="bare",
                       port=port, log_path=f"{tmp}/bare.log") as bare:
            ours.wait_ready(120)
            bare.wait_ready(120)
            results: dict[tuple[str, str, int], list[Figures]] = {}
            for repeat in range(args.repeats):
                for protocol, (suffix, body) in bodies(row).items():
                    for c in levels:
                        pair = (ours, bare) if repeat % 2 == 0 else (bare, ours)
                        for server in pair:
                            fig = measure(server, url_of(server, protocol, suffix), body, headers, args.requests,
                                          c)
                            if fig.errors:
                                raise RuntimeError(f"{server.name} {protocol}: {fig.errors} failed requests; "
                                                   f"log {server.log_path}:\n{server.log_tail()}")
                            results.setdefault((server.name, protocol, c), []).append(fig)
    print(f"after:  {load_line()}")
    print(f"{args.requests} requests per run, {args.repeats} alternating runs, medians; one row of 30 features")
    print(f"{'server':<6} {'protocol':<8} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}")
    med: dict[tuple[str, str, int], Figures] = {}
    for key, figs in sorted(results.items()):
        med[key] = Figures(statistics.median(f.rps for f in figs), statistics.median(f.p50_ms for f in figs),
                           statistics.median(f.p99_ms for f in figs), 0, statistics.median(f.cpu_us for f in figs))
        f = med[key]
        print(f"{key[0]:<6} {key[1]:<8} {key[2]:>4} {f.rps:>9,.0f} {f.p50_ms:>8.2f} {f.p99_ms:>8.2f} "
              f"{f.cpu_us:>11,.0f}")
    worst_ratio, worst_p99 = 1e9, 0.0
    for protocol in ("v1", "v2"):
        for c in levels:
            o, b = med[("ours", protocol, c)], med[("bare", protocol, c)]
            pairs = list(zip(results[("ours", protocol, c)], results[("bare", protocol, c)], strict=True))
            ratio = statistics.median(x.rps / y.rps for x, y in pairs)
            by_cpu = statistics.median(y.cpu_us / x.cpu_us for x, y in pairs)
            worst_ratio = min(worst_ratio, ratio)
            print(f"ratio ours/bare req/s, {protocol}, concurrency {c}: {ratio:.3f} (goal >= {GOAL_RATIO}); "
                  f"by server CPU per request {by_cpu:.3f}; p99 {o.p99_ms:.2f} ms vs {b.p99_ms:.2f} ms")
            if c == max(levels):
                worst_p99 = max(worst_p99, o.p99_ms)
    print(f"ratio worst ours/bare req/s: {worst_ratio:.3f} (goal >= {GOAL_RATIO})")
    print(f"ratio ours p99 at concurrency {max(levels)}, worst protocol: {worst_p99:.2f} ms (goal <= {GOAL_P99_MS})")
    return 0


if __name__ == "__main__":
    if "--bare-server" in sys.argv:
        sys.exit(serve_bare(sys.argv[1:]))
    sys.exit(main(sys.argv[1:]))
