"""A real ``kserve.ModelServer`` process serving a model the trainer just trained on breast_cancer, queried with
KServe's own REST client (v1 and v2, good and bad requests) over loopback: readiness, metadata, lineage,
metrics, clean SIGTERM, a model that cannot warm up, and no server outliving the process that started it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import polars as pl
import psutil
import pytest
import torch
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig

from components.data.breast_cancer import breast_cancer_events
from components.serving.processes import ModelServerError, ModelServerProcess, start_model_server
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.model import load_model, predict_proba, save_model
from components.training.trainer import train

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
NAME = "bc"
T = TypeVar("T")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, pl.DataFrame]:
    root = tmp_path_factory.mktemp("bc")
    df = breast_cancer_events()
    df.write_parquet(root / "bc.parquet")
    cfg = TrainerConfig.parse({"hidden_sizes": [16], "max_epochs": 4, "keep_checkpoints": 1})
    train(cfg, str(root / "bc.parquet"), str(root / "run"), DistEnv(), data_version="2026-11-23")
    return str(root / "run" / "model"), df.drop("entity_id", "event_timestamp", "label")


@pytest.fixture(scope="module")
def server(trained: tuple[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[ModelServerProcess, list[int]]]:
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with start_model_server(trained[0], name=NAME, log_path=log) as proc:
        statuses = proc.wait_ready(120)
        yield proc, statuses


def call(protocol: str, fn: Callable[[InferenceRESTClient], Awaitable[T]]) -> T:
    """Run one call of KServe's async REST client."""
    async def go() -> T:
        async with InferenceRESTClient(RESTConfig(protocol=protocol, timeout=30)) as client:
            return await fn(client)

    return asyncio.run(go())


def v1(proc: ModelServerProcess, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = call("v1", lambda c: c.infer(proc.url, data=body, model_name=NAME))
    return out


def v2(proc: ModelServerProcess, request: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
    out: InferResponse = call("v2", lambda c: c.infer(proc.url, data=request, model_name=NAME,
                                                      response_headers=headers))
    return out


def request_from_metadata(proc: ModelServerProcess, df: pl.DataFrame, request_id: str | None = None,
                          binary: bool = False) -> InferRequest:
    """A v2 request built only from the server's model metadata (names, datatypes) and the data."""
    meta = httpx.get(f"{proc.url}/v2/models/{NAME}").json()
    inputs = []
    for spec in meta["inputs"]:
        inp = InferInput(spec["name"], [df.height], spec["datatype"])
        inp.set_data_from_numpy(df[spec["name"]].to_numpy().astype(np.float64), binary_data=binary)
        inputs.append(inp)
    return InferRequest(NAME, inputs, request_id=request_id)


def class_count(proc: ModelServerProcess, version: str, cls: int) -> float:
    for line in httpx.get(f"{proc.url}/metrics").text.splitlines():
        if line.startswith("catalog_predictions_total{") and f'model_version="{version}"' in line \
                and f'predicted_class="{cls}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_ready_only_after_warm_up_and_kserves_client_agrees(server: tuple[ModelServerProcess, list[int]]) -> None:
    proc, statuses = server
    assert statuses[-1] == 200 and set(statuses) <= {0, 503, 200}, statuses  # never a 404 or 500 on the way
    assert call("v2", lambda c: c.is_model_ready(proc.url, NAME)) is True
    assert call("v1", lambda c: c.is_model_ready(proc.url, NAME)) is True
    assert call("v2", lambda c: c.is_server_live(proc.url)) is True


def test_v1_and_v2_serve_what_the_trainer_scores(server: tuple[ModelServerProcess, list[int]],
                                                 trained: tuple[str, pl.DataFrame]) -> None:
    proc, _ = server
    sample = trained[1].sample(25, seed=3)
    model, card = load_model(trained[0])
    expected = predict_proba(model, card, sample)
    version = card["weights_sha256"][:12]
    before = {c: class_count(proc, version, c) for c in (0, 1)}

    out = v1(proc, {"instances": sample.to_dicts()})
    np.testing.assert_allclose([p["probability"] for p in out["predictions"]], expected, rtol=1e-6)
    assert [p["class"] for p in out["predictions"]] == (expected >= 0.5).astype(int).tolist()
    assert out["model_version"] == version

    headers: dict[str, str] = {}
    res = v2(proc, request_from_metadata(proc, sample, request_id="req-42"), headers)
    # KServe's client drops model_version when it parses a response (InferResponse.from_bytes), so the version
    # is read from the header here and from the raw body below
    assert res.id == "req-42" and headers["x-model-version"] == version
    raw = request_from_metadata(proc, sample).to_rest()[0]
    assert httpx.post(f"{proc.url}/v2/models/{NAME}/infer", json=raw).json()["model_version"] == version
    probability = res.get_output_by_name("probability")
    classes = res.get_output_by_name("class")
    assert probability is not None and classes is not None
    np.testing.assert_allclose(probability.as_numpy(), expected, rtol=1e-6)
    assert classes.as_numpy().tolist() == (expected >= 0.5).astype(int).tolist()
    binary = v2(proc, request_from_metadata(proc, sample, binary=True))  # the binary tensor extension
    assert isinstance(binary.id, str) and len(binary.id) == 36
    np.testing.assert_allclose(binary.get_output_by_name("probability").as_numpy(), expected, rtol=1e-6)

    served = (expected >= 0.5).astype(int).tolist() * 4
    assert {c: class_count(proc, version, c) - before[c] for c in (0, 1)} == {0: served.count(0),
                                                                              1: served.count(1)}


def _status_error(fn: Callable[[], object]) -> httpx.HTTPStatusError:
    with pytest.raises(httpx.HTTPStatusError) as info:
        fn()
    return info.value


def test_bad_requests_are_400_naming_the_problem(server: tuple[ModelServerProcess, list[int]],
                                                 trained: tuple[str, pl.DataFrame]) -> None:
    proc, _ = server
    row = trained[1].head(1).to_dicts()[0]
    missing = {k: v for k, v in row.items() if k != "worst_area"}
    err = _status_error(lambda: v1(proc, {"instances": [missing]}))
    assert err.response.status_code == 400 and "missing feature(s) ['worst_area']" in str(err)
    err = _status_error(lambda: v1(proc, {"instances": [{**row, "mean_radius": "large"}]}))
    assert err.response.status_code == 400 and "feature 'mean_radius' must be a number, got a string" in str(err)
    err = _status_error(lambda: v1(proc, {"instances": [list(row.values())]}))
    assert err.response.status_code == 400 and "instance 0 is a list" in str(err)

    wrong_type = request_from_metadata(proc, trained[1].head(2))
    wrong_type.inputs[0] = InferInput(wrong_type.inputs[0].name, [2], "BYTES", data=["1.0", "2.0"])
    err = _status_error(lambda: v2(proc, wrong_type))
    assert err.response.status_code == 400 and "has datatype BYTES; expected FP64" in str(err)
    extra = request_from_metadata(proc, trained[1].head(2))
    extra.inputs.append(InferInput("zip_code", [2], "FP64", data=[1.0, 2.0]))
    err = _status_error(lambda: v2(proc, extra))
    assert err.response.status_code == 400 and "unknown feature(s) ['zip_code']" in str(err)
    nan = trained[1].head(2).with_columns(pl.lit(float("nan")).alias("mean_area"))
    err = _status_error(lambda: v2(proc, request_from_metadata(proc, nan, binary=True)))
    assert err.response.status_code == 400 and "feature 'mean_area' is nan; numbers must be finite" in str(err)
    assert proc.alive()


def test_metadata_lineage_and_metrics_are_served(server: tuple[ModelServerProcess, list[int]],
                                                 trained: tuple[str, pl.DataFrame]) -> None:
    proc, _ = server
    card = json.loads(Path(trained[0], "model_card.json").read_text())
    meta = httpx.get(f"{proc.url}/v2/models/{NAME}").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        (f["name"], "FP64", [-1]) for f in card["features"]]
    assert meta["versions"] == [card["weights_sha256"][:12]]
    lineage = httpx.get(f"{proc.url}/v1/models/{NAME}/lineage").json()["lineage"]
    assert lineage["data_version"] == "2026-11-23" and lineage["training_set_sha256"] == card["training_set_sha256"]
    assert lineage["metrics"]["test_auc"] == card["metrics"]["test_auc"] and lineage["package_version"] == "0.1.0"
    v1(proc, {"instances": trained[1].head(3).to_dicts()})
    text = httpx.get(f"{proc.url}/metrics").text
    for histogram in ("request_preprocess_seconds", "request_predict_seconds", "request_postprocess_seconds"):
        assert f'{histogram}_count{{model_name="{NAME}"}}' in text
    assert "catalog_predictions_total{" in text


def test_sigterm_stops_the_server_cleanly(trained: tuple[str, pl.DataFrame], tmp_path: Path) -> None:
    proc = start_model_server(trained[0], name="short", log_path=tmp_path / "short.log")
    try:
        proc.wait_ready(120)
    finally:
        assert proc.stop(grace_s=20) == 0, proc.log_tail()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proc.url}/v2/health/live")


def test_a_model_that_cannot_warm_up_never_reports_ready(trained: tuple[str, pl.DataFrame], tmp_path: Path) -> None:
    model, card = load_model(trained[0])
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_model(model, {k: v for k, v in card.items() if k not in ("format", "weights_file", "architecture",
                                                                  "weights_sha256", "versions")}, str(tmp_path / "m"))
    proc = start_model_server(str(tmp_path / "m"), name="nan", log_path=tmp_path / "nan.log")
    try:
        with pytest.raises(ModelServerError, match="exited with status 1 before it was ready") as info:
            proc.wait_ready(120)
        assert "non-finite probabilities" in str(info.value)
    finally:
        proc.stop()


def test_a_server_does_not_outlive_the_process_that_started_it(trained: tuple[str, pl.DataFrame],
                                                               tmp_path: Path) -> None:
    """The starter dies without any cleanup (os._exit); its server notices and stops by itself."""
    script = textwrap.dedent(f"""
        import os
        from components.serving.processes import start_model_server
        server = start_model_server({trained[0]!r}, name="orphan", log_path={str(tmp_path / "orphan.log")!r})
        server.wait_ready(120)
        print(server.pid, flush=True)
        os._exit(0)
    """)
    starter = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert starter.returncode == 0, starter.stderr
    pid = int(starter.stdout.split()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    else:
        psutil.Process(pid).kill()
        pytest.fail(f"model server {pid} outlived its starter; log:\n{(tmp_path / 'orphan.log').read_text()[-2000:]}")
    assert "model server for orphan stopped" in (tmp_path / "orphan.log").read_text()
