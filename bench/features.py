"""Feature-stage benchmark on generated demo events, each measurement in a fresh process:

- materialization rows/s of our component vs the ``feast materialize`` CLI on the same repository and data
  (both start a Python process and import Feast; goal ours >= 1.0x), with each one's peak RSS;
- our peak RSS at every ``--entities`` size (default 100k and 1M);
- online lookup p50/p99 for 10-entity requests on SQLite and on a loopback Redis (goal p99 <= 10 ms);
- historical retrieval seconds for ``--labels`` label rows (file and duckdb offline stores), ours vs one
  plain ``get_historical_features`` call.

    python -m bench features [--entities 100000,1000000] [--cli-entities 100000] [--labels 100000]
                             [--lookups 500] [--no-redis] [--workdir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GOAL_VS_CLI, GOAL_P99_MS = 1.0, 10.0
START, END = "2026-01-01T00:00:00", "2026-03-02T00:00:00"


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; wall seconds, its peak RSS (MiB, from wait4) and stdout. Fails loudly on a non-zero exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {err.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    """One measured task inside a fresh process (see ``main(['--worker', json])``)."""
    import resource

    from components.features.materialize import materialize

    t0 = time.perf_counter()
    if task["kind"] == "materialize":
        # Imported first so work_seconds excludes the import, as cli_work does.
        import feast.infra.offline_stores.dask
        import feast.infra.online_stores.sqlite

        t1 = time.perf_counter()
        report = materialize(task["repo"], None, {"start": START, "end": END})
        out: dict[str, Any] = report.to_metadata()
        out["work_seconds"] = time.perf_counter() - t1
    elif task["kind"] == "import":
        import feast  # noqa: F401

        out = {}
    else:
        raise ValueError(task["kind"])
    out["task_seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _in_fresh_process(task: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    code = "import sys; from bench.features import main; main(['--worker', sys.argv[1]])"
    wall, _, out = _run([sys.executable, "-c", code, json.dumps(task)])
    result = json.loads(out.strip().splitlines()[-1])
    return wall, result["peak_rss_mb"], result


def _data(workdir: Path, entities: int) -> tuple[str, int]:
    from components.data.events import EventsConfig, generate_events

    path = workdir / f"events-{entities}.parquet"
    if not path.exists():
        events = generate_events(EventsConfig(rows=2 * entities, entities=entities, days=60, seed=11))
        events.write_parquet(path)
    import polars as pl

    return str(path), int(pl.scan_parquet(path).select(pl.col("entity_id").n_unique()).collect().item())


def _apply(workdir: Path, name: str, data: str, store: dict[str, Any] | None = None) -> str:
    from components.features.apply import apply_repo

    out = workdir / name
    shutil.rmtree(out, ignore_errors=True)
    apply_repo("demo", str(out), {"store": store or {}, "source_paths": {"events": data}})
    return str(out)


def bench_materialize(workdir: Path, entities: int, with_cli: bool) -> dict[str, Any]:
    """Ours (and the CLI) from an empty online store, each in its own process."""
    data, present = _data(workdir, entities)
    res: dict[str, Any] = {"entities": entities, "entities_present": present}
    if with_cli:
        cli_repo = _apply(workdir, f"cli-{entities}", data)
        feast_cli = str(Path(sys.executable).with_name("feast"))
        wall, rss, _ = _run([feast_cli, "-c", cli_repo, "materialize", START, END])
        startup, _, _ = _run([sys.executable, "-c", "import feast.cli.cli"])
        res.update(cli_wall_s=wall, cli_peak_rss_mb=rss, cli_rows_per_s=2 * present / wall,
                   cli_import_s=startup, cli_work_rows_per_s=2 * present / max(wall - startup, 1e-9))
    repo = _apply(workdir, f"ours-{entities}", data)
    wall, rss, out = _in_fresh_process({"kind": "materialize", "repo": repo})
    res.update(ours_wall_s=wall, ours_peak_rss_mb=rss, ours_rows=out["rows"], ours_task_s=out["task_seconds"],
               ours_rows_per_s=out["rows"] / wall, ours_work_s=out["work_seconds"],
               ours_work_rows_per_s=out["rows"] / out["work_seconds"])
    if out["rows"] != 2 * present:
        raise RuntimeError(f"ours wrote {out['rows']} rows, expected {2 * present}")
    return res


def bench_online(repo: str, lookups: int, label: str) -> dict[str, Any]:
    """p50/p99 of ``get_online_features`` for 10 random present entities per call (after 20 warm-up calls)."""
    import numpy as np
    import polars as pl

    from components.features.repo import open_store

    store = open_store(repo)
    refs = ["activity:amount", "activity:n_items", "profile:country", "profile:account_age_days"]
    ids = pl.read_parquet(store.get_data_source("events").path, columns=["entity_id"])["entity_id"].unique()  # type: ignore[attr-defined]
    rng = np.random.default_rng(3)
    batches = [[{"entity_id": int(i)} for i in rng.choice(ids.to_numpy(), 10)] for _ in range(lookups + 20)]
    lat = []
    for i, rows in enumerate(batches):
        t0 = time.perf_counter()
        got = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        if i >= 20:
            lat.append((time.perf_counter() - t0) * 1000)
        if any(v is None for v in got["country"]):
            raise RuntimeError(f"{label}: a materialized entity has no online value")
    a = np.array(lat)
    return {"store": label, "calls": len(a), "p50_ms": float(np.percentile(a, 50)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def bench_redis_online(workdir: Path, entities: int, lookups: int) -> dict[str, Any] | str:
    """Materialize into a loopback Redis (started here, password from env) and time lookups."""
    try:
        from tests.servers import RedisServer, ServerUnavailable
    except ImportError:
        return "skipped: run from the repository root (tests.servers not importable)"
    from components.features.materialize import materialize

    data, _ = _data(workdir, entities)
    try:
        server = RedisServer().start()
    except ServerUnavailable as err:
        return f"skipped: {err}"
    try:
        os.environ["BENCH_REDIS_PASSWORD"] = server.password
        repo = _apply(workdir, "redis", data, {"online": "redis", "redis": server.address,
                                               "redis_password": {"env": "BENCH_REDIS_PASSWORD"}})
        report = materialize(repo, None, {"start": START, "end": END})
        out = bench_online(repo, lookups, "redis")
        out["materialize_rows_per_s"] = report.to_metadata()["rows_per_s"]
        return out
    finally:
        server.stop()


def bench_history(workdir: Path, entities: int, labels: int) -> list[dict[str, Any]]:
    """Training-set seconds for ``labels`` label rows: ours vs one plain Feast call, file and duckdb."""
    import polars as pl

    from components.features.repo import open_store
    from components.features.training_set import build_training_set

    data, _ = _data(workdir, entities)
    label_path = workdir / f"labels-{labels}.parquet"
    pl.read_parquet(data).sample(labels, seed=5, with_replacement=labels > entities * 2) \
        .select("entity_id", "event_timestamp", "label").write_parquet(label_path)
    results = []
    for offline in ("file", "duckdb"):
        repo = _apply(workdir, f"hist-{offline}", data, {"offline": offline})
        t0 = time.perf_counter()
        res = build_training_set(repo, str(label_path), str(workdir / f"train-{offline}.parquet"))
        ours = time.perf_counter() - t0
        store = open_store(repo)
        entity_df = pl.read_parquet(label_path).to_pandas()
        t0 = time.perf_counter()
        plain = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service("training"))
        plain_rows = len(plain.to_df())
        raw = time.perf_counter() - t0
        results.append({"offline": offline, "labels": labels, "ours_s": ours, "ours_rows": res.rows,
                        "plain_feast_s": raw, "plain_feast_rows": plain_rows, "missing_share": res.to_metadata()[
                            "missing_share"]})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints figures, then ``ratio`` lines."""
    p = argparse.ArgumentParser(prog="python -m bench features", description=__doc__.split("\n")[0])
    p.add_argument("--entities", default="100000,1000000", help="comma-separated entity counts (2 rows each)")
    p.add_argument("--cli-entities", default="100000", help="sizes also run through the feast CLI")
    p.add_argument("--labels", type=int, default=100_000, help="label rows for historical retrieval")
    p.add_argument("--lookups", type=int, default=500, help="timed online calls per store")
    p.add_argument("--no-redis", action="store_true", help="skip the Redis online lookups")
    p.add_argument("--workdir", default=None, help="keep data and repositories here (default: a temp dir)")
    p.add_argument("--json", default=None, help="also write all figures to this JSON file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(list(argv) if argv is not None else None)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-features-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.entities.split(",") if s]
    cli_sizes = {int(s) for s in args.cli_entities.split(",") if s}
    figures: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "load_avg": os.getloadavg(),
                               "materialize": [], "online": [], "history": []}
    try:
        for n in sizes:
            m = bench_materialize(workdir, n, n in cli_sizes)
            figures["materialize"].append(m)
            print("materialize " + " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in m.items()), flush=True)
        small = min(sizes)
        figures["online"].append(bench_online(str(workdir / f"ours-{small}"), args.lookups, "sqlite"))
        if not args.no_redis:
            figures["online"].append(bench_redis_online(workdir, small, args.lookups))
        for o in figures["online"]:
            print(f"online {o}", flush=True)
        figures["history"] = bench_history(workdir, small, args.labels)
        for h in figures["history"]:
            print(f"history {h}", flush=True)
    finally:
        figures["load_avg_end"] = os.getloadavg()
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n")
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    for m in figures["materialize"]:
        if "cli_wall_s" in m:
            ratio = m["ours_rows_per_s"] / m["cli_rows_per_s"]
            print(f"ratio ours_vs_feast_cli_rows_per_s[{m['entities']}]: {ratio:.2f}x (goal >= {GOAL_VS_CLI}x, "
                  f"both fresh processes) {'OK' if ratio >= GOAL_VS_CLI else 'MISSED'}")
            print(f"ratio ours_vs_feast_cli_work_rows_per_s[{m['entities']}]: "
                  f"{m['ours_work_rows_per_s'] / m['cli_work_rows_per_s']:.2f}x (Python start and imports excluded)")
            print(f"ratio ours_vs_feast_cli_peak_rss[{m['entities']}]: "
                  f"{m['ours_peak_rss_mb'] / m['cli_peak_rss_mb']:.2f}x")
    for o in figures["online"]:
        if isinstance(o, dict):
            ok = "OK" if o["p99_ms"] <= GOAL_P99_MS else "MISSED"
            print(f"ratio online_p99_vs_goal[{o['store']}]: {o['p99_ms'] / GOAL_P99_MS:.2f}x of {GOAL_P99_MS} ms {ok}")
    for h in figures["history"]:
        print(f"ratio history_ours_vs_plain_feast[{h['offline']}]: {h['ours_s'] / h['plain_feast_s']:.2f}x the time")
    return 0
