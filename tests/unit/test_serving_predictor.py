"""The predictor behind KServe's own REST application (in process, no port): request validation and encoding
for v1 and v2, honest readiness, metadata from the card, lineage and the prediction counter."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
import torch
from fastapi import FastAPI
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferInput, InferRequest
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer
from prometheus_client import REGISTRY

from components.data.events import EventsConfig, generate_events
from components.serving.lineage import model_version
from components.serving.predictor import VERSION_HEADER, DenseForward, TabularPredictor, checked_forward
from components.serving.server import VersionedDataPlane, add_lineage_routes
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.model import CARD_FILE, MLP, load_model, predict_proba, save_model
from components.training.trainer import train

NAME = "events"
KEYS = ("entity_id", "event_timestamp", "label")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, pl.DataFrame]:
    """A real (one-epoch) model on the demo events plus a boolean column: numeric, integer, boolean and
    categorical features."""
    root = tmp_path_factory.mktemp("events")
    df = generate_events(EventsConfig(rows=300)).with_columns((pl.col("n_items") > 2).alias("is_member"))
    df.write_parquet(root / "events.parquet")
    cfg = TrainerConfig.parse({"hidden_sizes": [8], "max_epochs": 1, "keep_checkpoints": 1})
    train(cfg, str(root / "events.parquet"), str(root / "run"), DistEnv(), data_version="2026-11-23")
    return str(root / "run" / "model"), df.drop(KEYS)


def application(predictor: TabularPredictor) -> FastAPI:
    """KServe's REST application for ``predictor`` with the server's additions, on a fresh FastAPI app (KServe's
    module-level app would accumulate routes across tests)."""
    registry = ModelRepository()
    registry.update(predictor)
    rest = RESTServer("kserve.model_server:app", VersionedDataPlane(model_registry=registry),
                      ModelRepositoryExtension(model_registry=registry), http_port=0)
    app = FastAPI()
    add_lineage_routes(app, registry)
    rest._register_endpoints(app)
    rest._add_exception_handlers(app)
    return app


class AppClient:
    """Synchronous requests into an ASGI app through ``httpx.ASGITransport`` (no port); a server error comes
    back as its 500 response, not as an exception."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
                return await client.request(method, url, **kw)

        return asyncio.run(call())

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


@pytest.fixture(scope="module")
def served(trained: tuple[str, pl.DataFrame]) -> tuple[TabularPredictor, AppClient]:
    predictor = TabularPredictor(NAME, trained[0])
    predictor.load()
    return predictor, AppClient(application(predictor))


def rows(df: pl.DataFrame, n: int = 5) -> list[dict[str, Any]]:
    return df.head(n).to_dicts()


def v2_body(instances: list[dict[str, Any]], datatypes: dict[str, str], **extra: Any) -> dict[str, Any]:
    names = list(instances[0])
    return {"inputs": [{"name": c, "shape": [len(instances)], "datatype": datatypes[c],
                        "data": [r[c] for r in instances]} for c in names], **extra}


def datatypes(client: AppClient) -> dict[str, str]:
    return {i["name"]: i["datatype"] for i in client.get(f"/v2/models/{NAME}").json()["inputs"]}


def counter(version: str, cls: int) -> float:
    value = REGISTRY.get_sample_value("catalog_predictions_total", {"model_name": NAME, "model_version": version,
                                                                    "predicted_class": str(cls)})
    return value or 0.0


def test_served_probabilities_equal_the_trainers_own_scoring(served: tuple[TabularPredictor, AppClient],
                                                             trained: tuple[str, pl.DataFrame]) -> None:
    predictor, client = served
    sample = rows(trained[1], 20)
    sample[0]["country"] = "never-seen"  # an unseen category encodes as all zeros, as in training
    model, card = load_model(trained[0])
    expected = predict_proba(model, card, pl.DataFrame(sample, schema=trained[1].schema))

    v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": sample})
    assert v1.status_code == 200, v1.text
    body = v1.json()
    got = np.array([p["probability"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert [p["class"] for p in body["predictions"]] == [int(p >= 0.5) for p in got]
    assert body["model_version"] == predictor.version == card["weights_sha256"][:12]
    assert v1.headers[VERSION_HEADER] == predictor.version

    v2 = client.post(f"/v2/models/{NAME}/infer", json=v2_body(sample, datatypes(client), id="req-7"))
    assert v2.status_code == 200, v2.text
    out = {o["name"]: o for o in v2.json()["outputs"]}
    np.testing.assert_allclose(out["probability"]["data"], expected, rtol=1e-6)
    assert out["probability"]["datatype"] == "FP64" and out["class"]["datatype"] == "INT64"
    assert out["class"]["data"] == [int(p >= 0.5) for p in out["probability"]["data"]]
    assert v2.json()["id"] == "req-7" and v2.json()["model_version"] == predictor.version


def test_v2_accepts_column_tensors_and_gives_each_response_an_id(served: tuple[TabularPredictor, AppClient],
                                                                 trained: tuple[str, pl.DataFrame]) -> None:
    _, client = served
    sample = rows(trained[1], 3)
    body = v2_body(sample, datatypes(client))
    for inp in body["inputs"]:  # [n, 1] with nested data is the same request
        inp["shape"], inp["data"] = [3, 1], [[v] for v in inp["data"]]
    a = client.post(f"/v2/models/{NAME}/infer", json=body)
    b = client.post(f"/v2/models/{NAME}/infer", json=v2_body(sample, datatypes(client)))
    assert a.status_code == b.status_code == 200, a.text
    assert a.json()["outputs"] == b.json()["outputs"]
    ids = {a.json()["id"], b.json()["id"]}
    assert len(ids) == 2 and all(isinstance(i, str) and len(i) == 36 for i in ids)  # new uuids


def _without(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


V1_MISTAKES = [
    ("missing feature", lambda r: {"instances": [_without(r, "amount")]}, "missing feature(s) ['amount']"),
    ("unknown feature", lambda r: {"instances": [{**r, "colour": 1}]}, "unknown feature(s) ['colour']"),
    ("string for a number", lambda r: {"instances": [{**r, "amount": "12.5"}]},
     "feature 'amount' must be a number, got a string"),
    ("number for a category", lambda r: {"instances": [{**r, "country": 3}]},
     "feature 'country' must be a string (category), got a number"),
    ("null", lambda r: {"instances": [r, {**r, "session_minutes": None}]},
     "instance 1: feature 'session_minutes' must be a number, got null"),
    ("boolean for a number", lambda r: {"instances": [{**r, "amount": True}]},
     "feature 'amount' must be a number, got a boolean"),
    ("too large a number", lambda r: {"instances": [{**r, "amount": 10**400}]}, "number is infinity"),
    ("list instance", lambda r: {"instances": [list(r.values())]}, "instance 0 is a list"),
    ("empty", lambda r: {"instances": []}, "non-empty list"),
    ("no instances", lambda r: {"rows": [r]}, '{"instances": ['),
    ("extra field", lambda r: {"instances": [r], "options": {}}, "unknown request field(s) ['options']"),
]


@pytest.mark.parametrize(("case", "make", "message"), V1_MISTAKES, ids=[m[0] for m in V1_MISTAKES])
def test_v1_client_mistakes_are_400_naming_the_problem(served: tuple[TabularPredictor, AppClient],
                                                       trained: tuple[str, pl.DataFrame], case: str,
                                                       make: Any, message: str) -> None:
    predictor, client = served
    before = counter(predictor.version, 0) + counter(predictor.version, 1)
    payload = make(rows(trained[1], 1)[0])
    r = client.post(f"/v1/models/{NAME}:predict", content=json.dumps(payload),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.json()
    assert counter(predictor.version, 0) + counter(predictor.version, 1) == before  # nothing predicted


def test_v1_non_json_body_and_non_finite_json_are_400(served: tuple[TabularPredictor, AppClient]) -> None:
    _, client = served
    r = client.post(f"/v1/models/{NAME}:predict", content=b"amount=1", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "must be JSON" in r.json()["error"]
    r = client.post(f"/v1/models/{NAME}:predict", content=b'{"instances": [{"amount": NaN}]}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "Unrecognized request format" in r.json()["error"]  # KServe's JSON parser


def _edit(body: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    for inp in body["inputs"]:
        if inp["name"] == name:
            inp.update(fields)
    return body


V2_MISTAKES = [
    ("missing input", lambda b: {"inputs": [i for i in b["inputs"] if i["name"] != "device"]},
     "missing feature(s) ['device']"),
    ("unknown input", lambda b: {"inputs": [*b["inputs"], {**b["inputs"][0], "name": "zip"}]},
     "unknown feature(s) ['zip']"),
    ("repeated input", lambda b: {"inputs": [*b["inputs"], b["inputs"][0]]}, "given more than once"),
    ("bytes for a number", lambda b: _edit(b, "amount", datatype="BYTES", data=["1.0", "2.0"]),
     "input 'amount' has datatype BYTES; expected FP64"),
    ("number for a category", lambda b: _edit(b, "country", datatype="FP64", data=[1.0, 2.0]),
     "input 'country' has datatype FP64; expected BYTES"),
    ("bool for a non-boolean", lambda b: _edit(b, "amount", datatype="BOOL", data=[True, False]),
     "input 'amount' has datatype BOOL"),
    ("2-D shape", lambda b: _edit(b, "amount", shape=[1, 2]), "has shape [1, 2]; expected [n] or [n, 1]"),
    ("rows differ", lambda b: _edit(b, "amount", shape=[1], data=[1.0]),
     "inputs differ in row count: 1 in ['amount']; 2 in ['n_items', "),
    ("values differ from shape", lambda b: _edit(b, "amount", data=[1.0, 2.0, 3.0]), "has 3 values for shape [2]"),
    ("NaN as text", lambda b: _edit(b, "amount", data=[1.0, "NaN"]),
     "row 1: feature 'amount' must be a number, got a string"),
    ("fraction in an integer tensor", lambda b: _edit(b, "n_items", datatype="INT64", data=[1, 2.5]),
     "input 'n_items' (INT64) holds a non-integer value 2.5"),
    ("string in a category", lambda b: _edit(b, "device", data=["ios", None]), "feature 'device' must be a string"),
]


@pytest.mark.parametrize(("case", "make", "message"), V2_MISTAKES, ids=[m[0] for m in V2_MISTAKES])
def test_v2_client_mistakes_are_400_naming_the_problem(served: tuple[TabularPredictor, AppClient],
                                                       trained: tuple[str, pl.DataFrame], case: str,
                                                       make: Any, message: str) -> None:
    _, client = served
    body = make(v2_body(rows(trained[1], 2), datatypes(client)))
    r = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.json()


def test_v2_non_finite_binary_tensor_is_400(served: tuple[TabularPredictor, AppClient],
                                            trained: tuple[str, pl.DataFrame]) -> None:
    """Binary tensors (the v2 binary extension) can carry NaN and infinities; they are refused too."""
    _, client = served
    df = trained[1].head(2)
    types = datatypes(client)
    inputs = []
    for name, datatype in types.items():
        inp = InferInput(name, [2], datatype)
        values = df[name].to_numpy()
        if name == "session_minutes":
            values = np.array([1.0, math.inf])
        inp.set_data_from_numpy(values.astype(object) if datatype == "BYTES" else values, binary_data=True)
        inputs.append(inp)
    data, json_length = InferRequest(NAME, inputs).to_rest()
    assert isinstance(data, bytes) and json_length
    r = client.post(f"/v2/models/{NAME}/infer", content=data,
                    headers={"inference-header-content-length": str(json_length),
                             "content-type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    assert "row 1: feature 'session_minutes' is inf; numbers must be finite" in r.json()["error"]


def test_metadata_lists_the_cards_inputs_so_a_client_needs_nothing_else(
        served: tuple[TabularPredictor, AppClient], trained: tuple[str, pl.DataFrame]) -> None:
    predictor, client = served
    meta = client.get(f"/v2/models/{NAME}").json()
    card = json.loads(Path(trained[0], CARD_FILE).read_text())
    assert [i["name"] for i in meta["inputs"]] == [f["name"] for f in card["features"]]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "amount": "FP64", "n_items": "INT64", "session_minutes": "FP64", "account_age_days": "INT64",
        "country": "BYTES", "channel": "BYTES", "device": "BYTES", "is_member": "BOOL"}
    assert all(i["shape"] == [-1] for i in meta["inputs"])
    assert [o["name"] for o in meta["outputs"]] == ["probability", "class"]
    assert meta["versions"] == [predictor.version]
    # a request built from the metadata alone, with values of the listed types, is served
    fill = {"FP64": 1.5, "INT64": 2, "BOOL": True, "BYTES": "x"}
    body = {"inputs": [{"name": i["name"], "datatype": i["datatype"], "shape": [1], "data": [fill[i["datatype"]]]}
                       for i in meta["inputs"]]}
    assert client.post(f"/v2/models/{NAME}/infer", json=body).status_code == 200


def test_lineage_comes_from_the_card(served: tuple[TabularPredictor, AppClient],
                                     trained: tuple[str, pl.DataFrame]) -> None:
    predictor, client = served
    card = json.loads(Path(trained[0], CARD_FILE).read_text())
    for prefix in ("/v2", "/v1"):
        r = client.get(f"{prefix}/models/{NAME}/lineage")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["version"] == predictor.version
        lineage = got["lineage"]
        assert lineage["data_version"] == "2026-11-23" and lineage["data_uri"] == card["data_uri"]
        assert lineage["training_set_sha256"] == card["training_set_sha256"] and len(card["training_set_sha256"]) == 64
        assert lineage["trainer_config"] == card["trainer_config"] and lineage["metrics"] == card["metrics"]
        assert lineage["package_version"] == card["package_version"] and lineage["model_uri"] == trained[0]
    assert client.get("/v2/models/other/lineage").status_code == 404


def test_not_ready_until_loaded_and_warmed_up(trained: tuple[str, pl.DataFrame]) -> None:
    predictor = TabularPredictor("late", trained[0])
    client = AppClient(application(predictor))
    row = rows(trained[1], 1)
    for method, url, kw in [("GET", "/v2/models/late/ready", {}), ("GET", "/v1/models/late", {}),
                            ("GET", "/v2/models/late", {}), ("GET", "/v2/models/late/lineage", {}),
                            ("POST", "/v1/models/late:predict", {"json": {"instances": row}})]:
        assert client.request(method, url, **kw).status_code == 503, url
    assert client.get("/v2/health/live").status_code == 200  # alive, not ready
    predictor.load()
    assert client.get("/v2/models/late/ready").status_code == 200
    assert client.post("/v1/models/late:predict", json={"instances": row}).status_code == 200

def test_a_model_failing_its_warm_up_never_becomes_ready(trained: tuple[str, pl.DataFrame], tmp_path: Path) -> None:
    """Weights with a NaN pass the digest check (the digest is of what was saved) but cannot predict."""
    model, card = load_model(trained[0])
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_model(model, {k: v for k, v in card.items() if k not in ("format", "weights_file", "architecture",
                                                                  "weights_sha256", "versions")}, str(tmp_path))
    predictor = TabularPredictor("nan", str(tmp_path))
    with pytest.raises(RuntimeError, match="non-finite probabilities"):
        predictor.load()
    assert AppClient(application(predictor)).get("/v2/models/nan/ready").status_code == 503


def test_threshold_and_version_come_from_the_card_or_the_caller(trained: tuple[str, pl.DataFrame],
                                                                tmp_path: Path) -> None:
    shutil.copytree(trained[0], tmp_path / "m")
    card_path = tmp_path / "m" / CARD_FILE
    card = json.loads(card_path.read_text())
    sample = rows(trained[1], 30)
    base = TabularPredictor("t", trained[0])
    base.load()
    proba = np.array([p["probability"] for p in base.predict({"instances": sample})["predictions"]])
    threshold = float(np.median(proba))
    card_path.write_text(json.dumps({**card, "threshold": threshold}))
    tuned = TabularPredictor("t", str(tmp_path / "m"), version="v7")
    tuned.load()
    out = tuned.predict({"instances": sample})
    assert [p["class"] for p in out["predictions"]] == [int(p >= threshold) for p in proba]
    assert out["model_version"] == "v7" and base.version == model_version(card)
    card_path.write_text(json.dumps({**card, "threshold": 1.5}))
    with pytest.raises(ValueError, match=r"threshold 1\.5 is not between 0 and 1"):
        TabularPredictor("t", str(tmp_path / "m")).load()


def test_a_card_from_before_lineage_still_serves(trained: tuple[str, pl.DataFrame], tmp_path: Path) -> None:
    shutil.copytree(trained[0], tmp_path / "old")
    card_path = tmp_path / "old" / CARD_FILE
    card = json.loads(card_path.read_text())
    old = {k: v for k, v in card.items() if k not in ("data_version", "training_set_sha256", "package_version",
                                                      "image", "threshold")}
    card_path.write_text(json.dumps(old))
    predictor = TabularPredictor("old", str(tmp_path / "old"))
    predictor.load()
    assert predictor.threshold == 0.5 and predictor.lineage is not None
    assert predictor.lineage.data_version == "" and predictor.lineage.training_set_sha256 == ""
    assert predictor.lineage.data_uri == card["data_uri"]
    assert len(predictor.predict({"instances": rows(trained[1], 2)})["predictions"]) == 2


def test_metrics_have_kserves_histograms_and_count_predictions_by_class(
        served: tuple[TabularPredictor, AppClient], trained: tuple[str, pl.DataFrame]) -> None:
    predictor, client = served
    before = {c: counter(predictor.version, c) for c in (0, 1)}
    sample = rows(trained[1], 40)
    classes = [p["class"] for p in client.post(f"/v1/models/{NAME}:predict",
                                               json={"instances": sample}).json()["predictions"]]
    v2 = client.post(f"/v2/models/{NAME}/infer", json=v2_body(sample[:7], datatypes(client))).json()
    classes += next(o["data"] for o in v2["outputs"] if o["name"] == "class")
    assert {c: counter(predictor.version, c) - before[c] for c in (0, 1)} == {0: classes.count(0),
                                                                              1: classes.count(1)}
    text = client.get("/metrics").text
    assert f'request_predict_seconds_count{{model_name="{NAME}"}}' in text
    assert f'request_preprocess_seconds_bucket{{le="0.005",model_name="{NAME}"}}' in text
    assert (f'catalog_predictions_total{{model_name="{NAME}",model_version="{predictor.version}",'
            f'predicted_class="1"}}') in text


def test_numpy_forward_is_the_torch_modules_own_and_refuses_anything_else() -> None:
    net = MLP(6, [5, 4], 0.3).eval()
    x = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(DenseForward(net)(x), expected, rtol=1e-5, atol=1e-6)
    odd = MLP(6, [5], 0.1)
    odd.net.insert(1, torch.nn.LayerNorm(5))
    with pytest.raises(ValueError, match="unexpected MLP layers"):
        DenseForward(odd)

    class Shifted(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1.0

    with pytest.raises(ValueError, match="numpy forward differs from the torch module"):
        checked_forward(Shifted(6, [5], 0.1).eval(), 6)
