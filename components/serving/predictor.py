"""The KServe predictor for the trainer's models: one ``kserve.Model`` for the local model server, the serving
image and a ServingRuntime. It loads ``model.safetensors`` + ``model_card.json`` (no pickle) from a local path or
fsspec URI and answers both KServe protocols; every request is checked against the card's features first.

v1 ``POST /v1/models/{name}:predict``: ``{"instances": [{"<feature>": value, ...}, ...]}``, one object per row
keyed by feature name (every feature, no other key; numbers for numeric features, ``true``/``false`` also for
boolean ones, strings for categorical ones). Answer: ``{"predictions": [{"probability": p, "class": c}, ...],
"model_name": ..., "model_version": ...}``.

v2 ``POST /v2/models/{name}/infer``: one input tensor per feature, named like it, shape ``[n]`` (or ``[n, 1]``),
datatype as listed by ``GET /v2/models/{name}`` (any numeric datatype for a numeric feature; ``BYTES`` for a
categorical one). Answer: outputs ``probability`` (FP64, P(label = 1)) and ``class`` (INT64, 1 when the
probability is at least the card's ``threshold``, default 0.5), the request's id (or a new uuid) and the model
version.

A client mistake (unknown, missing or repeated feature, wrong type, datatype or shape, null, non-finite number)
is ``kserve.errors.InvalidInput``: HTTP 400 with a message naming it. Unseen categories are no mistake: they
encode as all zeros, as the card's preprocessing says. The model is ready (``/v2/models/{name}/ready`` 200)
only after its weights are loaded and a warm-up prediction on a row built from the card has passed. Each
prediction is counted by predicted class in ``catalog_predictions_total``, next to KServe's own histograms.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import kserve
import numpy as np
import torch
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import Counter

from components.serving.lineage import Lineage
from components.training.data import CATEGORICAL_KIND, NUMERIC_KIND, Preprocessing
from components.training.model import load_model

log = logging.getLogger("components.serving.predictor")
VERSION_HEADER = "x-model-version"
DEFAULT_THRESHOLD = 0.5
PREDICTIONS = Counter("catalog_predictions", "Rows predicted, by predicted class",
                      ["model_name", "model_version", "predicted_class"])

_INT_DATATYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOAT_DATATYPES = {"FP16", "FP32", "FP64"}
_NUMBER = (int, float)
_DATATYPES = {"Float32": "FP32", "Int8": "INT8", "Int16": "INT16", "Int32": "INT32", "Int64": "INT64",
              "UInt8": "UINT8", "UInt16": "UINT16", "UInt32": "UINT32", "UInt64": "UINT64", "Boolean": "BOOL"}


def v2_datatype(dtype: str, kind: str) -> str:
    """The v2 datatype of a card feature (its polars dtype name and kind): FP64, INT64, BOOL, BYTES, ..."""
    if kind == CATEGORICAL_KIND:
        return "BYTES"
    return _DATATYPES.get(dtype, "FP64")  # Float64, Decimal, Int128, ...: FP64


@dataclass(frozen=True)
class Feature:
    """One model input as the card defines it, with its place in the encoded matrix."""

    name: str
    kind: str
    datatype: str
    column: int  # numeric: its column; categorical: the first column of its one-hot block
    mean: float = 0.0
    std: float = 1.0
    vocabulary: dict[str, int] | None = None  # category -> offset from ``column`` (categorical only)

    @property
    def is_bool(self) -> bool:
        return self.datatype == "BOOL"


@dataclass
class Batch:
    """Validated rows: numeric features as one float64 matrix (encoded column order), categories as lists."""

    n: int
    numeric: np.ndarray
    categorical: dict[str, list[str]]


class FeatureSchema:
    """The card's features: request validation (v1 and v2) and the encoding the trainer's preprocessing
    defines (standardised numbers, one-hot categories; unseen categories all zeros)."""

    def __init__(self, card: dict[str, Any]) -> None:
        pre = Preprocessing.from_dict(card["preprocessing"])
        listed = {str(f["name"]): f for f in card["features"]}
        if set(listed) != set(pre.order):
            raise ValueError(f"model card: features {sorted(listed)} differ from the preprocessing's "
                             f"{sorted(pre.order)}")
        self.numeric = [Feature(name, NUMERIC_KIND, v2_datatype(str(listed[name]["dtype"]), NUMERIC_KIND), j, mean,
                                std) for j, (name, (mean, std)) in enumerate(pre.numeric.items())]
        self.categorical, column = [], len(pre.numeric)
        for name, vocab in pre.categorical.items():
            self.categorical.append(Feature(name, CATEGORICAL_KIND, "BYTES", column,
                                            vocabulary={v: i for i, v in enumerate(vocab)}))
            column += len(vocab)
        self.by_name = {f.name: f for f in [*self.numeric, *self.categorical]}
        self.features = [self.by_name[str(f["name"])] for f in card["features"]]  # the card's (table) order
        self.width = pre.width
        self.names = frozenset(self.by_name)
        self._numeric_names = [f.name for f in self.numeric]
        self._means = np.array([f.mean for f in self.numeric], dtype=np.float64)
        self._stds = np.array([f.std for f in self.numeric], dtype=np.float64)
        numbers = frozenset(_INT_DATATYPES | _FLOAT_DATATYPES)
        self._accepts = {f.name: frozenset({"BYTES"}) if f.vocabulary is not None
                         else numbers | {"BOOL"} if f.is_bool else numbers for f in self.by_name.values()}

    def input_types(self) -> list[dict[str, Any]]:
        """v2 metadata of the inputs: one tensor per feature, variable batch."""
        return [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in self.features]

    def synthetic_row(self) -> dict[str, Any]:
        """A valid v1 instance from the card alone: numeric features at their training mean, categorical ones
        at their first known category."""
        return {f.name: (bool(f.mean >= 0.5) if f.is_bool else f.mean) if f.kind == NUMERIC_KIND
                else next(iter(f.vocabulary or {}), "") for f in self.features}

    def encode(self, batch: Batch) -> np.ndarray:
        """The float32 model input for a validated batch, as ``Preprocessing.transform`` would encode it."""
        out = np.zeros((batch.n, self.width), dtype=np.float32)
        out[:, :len(self.numeric)] = (batch.numeric - self._means) / self._stds
        for f in self.categorical:
            vocabulary = f.vocabulary or {}
            for i, v in enumerate(batch.categorical[f.name]):
                pos = vocabulary.get(v)
                if pos is not None:
                    out[i, f.column + pos] = 1.0
        return out

    def v1_batch(self, body: Any) -> Batch:
        """Validate a v1 body and return its rows; ``InvalidInput`` names any problem."""
        if isinstance(body, (bytes, str)):
            raise InvalidInput("a v1 request must be JSON (content-type application/json): "
                               '{"instances": [{"<feature>": value, ...}]}')
        if not isinstance(body, dict) or "instances" not in body:
            raise InvalidInput('a v1 request is a JSON object {"instances": [{"<feature>": value, ...}, ...]}')
        extra = sorted(set(body) - {"instances"})
        if extra:
            raise InvalidInput(f"unknown request field(s) {extra}; a v1 request has only 'instances'")
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("'instances' must be a non-empty list of objects keyed by feature name")
        rows = []
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict):
                raise InvalidInput(f"instance {i} is {_json_type(inst)}; send an object keyed by feature name "
                                   f"(the inputs of GET /v2/models/{{name}})")
            if len(inst) != len(self.names) or inst.keys() != self.names:
                self._name_problem(set(inst), f"instance {i}")
            values = [inst[name] for name in self._numeric_names]
            if not all(type(v) in _NUMBER for v in values):
                for f, v in zip(self.numeric, values, strict=True):
                    self._check_number(v, f, f"instance {i}")
            for f in self.categorical:
                self._check_category(inst[f.name], f, f"instance {i}")
            rows.append(values)
        with _too_large():
            matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.numeric))
        numeric = self._finite(matrix, "instance")
        return Batch(len(rows), numeric, {f.name: [inst[f.name] for inst in instances] for f in self.categorical})

    def v2_batch(self, request: InferRequest) -> Batch:
        """Validate a v2 request and return its rows; ``InvalidInput`` names any problem."""
        tensors = [(inp.name, inp.datatype, inp.shape, inp.data, inp) for inp in request.inputs]  # read once each
        seen = [t[0] for t in tensors]
        if len(set(seen)) != len(seen):
            raise InvalidInput(f"input(s) {sorted({s for s in seen if seen.count(s) > 1})} given more than once")
        if set(seen) != self.names:
            self._name_problem(set(seen), "request inputs")
        rows: dict[int, list[str]] = {}
        for name, _, shape, _, _ in tensors:
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
                raise InvalidInput(f"input {name!r} has shape {list(shape)}; expected [n] or [n, 1] with n >= 1")
            rows.setdefault(int(shape[0]), []).append(name)
        if len(rows) > 1:
            groups = "; ".join(f"{k} in {v[:5]}{' …' if len(v) > 5 else ''}" for k, v in sorted(rows.items()))
            raise InvalidInput(f"inputs differ in row count: {groups}")
        (n,) = rows
        columns: list[list[Any]] = [[]] * len(self.numeric)
        categorical: dict[str, list[str]] = {}
        for name, datatype, shape, raw, inp in tensors:
            f = self.by_name[name]
            if datatype not in self._accepts[name]:
                raise InvalidInput(f"input {name!r} has datatype {datatype}; expected {f.datatype}")
            data = _flat(raw) if isinstance(raw, list) else list(_as_numpy(inp).reshape(-1).tolist())
            if len(data) != n:
                raise InvalidInput(f"input {name!r} has {len(data)} values for shape {list(shape)}")
            if f.vocabulary is not None:
                if not all(type(v) is str for v in data):  # the usual case in one pass; else name the bad row
                    for i, v in enumerate(data):
                        self._check_category(v, f, f"row {i}")
                categorical[name] = data
                continue
            if datatype in _INT_DATATYPES and not all(type(v) is int for v in data):
                bad = next(v for v in data if type(v) is not int)
                raise InvalidInput(f"input {name!r} ({datatype}) holds a non-integer value {bad!r}")
            columns[f.column] = data
        if not all(type(v) in _NUMBER for v in chain.from_iterable(columns)):  # one pass; else name the bad value
            for f in self.numeric:
                for i, v in enumerate(columns[f.column]):
                    self._check_number(v, f, f"row {i}")
        with _too_large():
            numeric = np.array(columns, dtype=np.float64).reshape(len(self.numeric), n).T
        return Batch(n, self._finite(numeric, "row"), categorical)

    def _name_problem(self, given: set[str], where: str) -> None:
        missing, unknown = sorted(self.names - given), sorted(given - self.names)
        parts = [f"missing feature(s) {missing}"] if missing else []
        parts += [f"unknown feature(s) {unknown}"] if unknown else []
        raise InvalidInput(f"{where}: {'; '.join(parts)} (the model takes {len(self.names)} features: "
                           f"see the inputs of GET /v2/models/{{name}})")

    @staticmethod
    def _check_number(v: Any, f: Feature, where: str) -> None:
        if type(v) not in _NUMBER and not (f.is_bool and type(v) is bool):
            expected = "a number or a boolean" if f.is_bool else "a number"
            raise InvalidInput(f"{where}: feature {f.name!r} must be {expected}, got {_json_type(v)}")

    @staticmethod
    def _check_category(v: Any, f: Feature, where: str) -> None:
        if type(v) is not str:
            raise InvalidInput(f"{where}: feature {f.name!r} must be a string (category), got {_json_type(v)}")

    def _finite(self, numeric: np.ndarray, unit: str) -> np.ndarray:
        finite = np.isfinite(numeric)
        if not finite.all():
            i, j = (int(k[0]) for k in np.nonzero(~finite))
            raise InvalidInput(f"{unit} {i}: feature {self.numeric[j].name!r} is {float(numeric[i, j])!r}; "
                               "numbers must be finite")
        return numeric


@contextmanager
def _too_large() -> Iterator[None]:
    try:
        yield
    except OverflowError:
        raise InvalidInput("a number is too large for a 64-bit float") from None


def checked_forward(net: torch.nn.Module, width: int) -> DenseForward:
    """``DenseForward`` of ``net``, after checking it gives the module's own logits on a random batch."""
    forward = DenseForward(net)
    x = np.random.default_rng(0).normal(size=(64, width)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = forward(x)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
        raise ValueError(f"numpy forward differs from the torch module by up to {np.nanmax(np.abs(got - expected))}")
    return forward


def _json_type(v: Any) -> str:
    return {type(None): "null", bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(v), "a number" if isinstance(v, _NUMBER) else type(v).__name__)


def _flat(data: list[Any]) -> list[Any]:
    """Row-major values of a JSON tensor given flat or nested ([[1], [2]])."""
    return [x for row in data for x in row] if data and isinstance(data[0], list) else data


def _as_numpy(inp: Any) -> np.ndarray:
    try:
        return np.asarray(inp.as_numpy())
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"input {inp.name!r}: {err}") from None


class DenseForward:
    """The trainer's MLP in eval mode (``Linear`` → ``ReLU`` per hidden layer, ``Dropout`` is the identity, then
    the logit) as float32 numpy matrix products over the loaded module's own weights. For one-row requests it
    costs about a third of calling the torch module (whose per-layer Python overhead dominates at that size);
    ``TabularPredictor.load`` checks it against the module on a batch before serving with it."""

    def __init__(self, net: torch.nn.Module) -> None:
        seq = getattr(net, "net", None)
        layers = list(seq) if isinstance(seq, torch.nn.Sequential) else []
        kinds = [type(m) for m in layers]
        hidden = (len(kinds) - 1) // 3
        expected = [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout] * hidden + [torch.nn.Linear]
        if not layers or kinds != expected:
            raise ValueError(f"unexpected MLP layers {[k.__name__ for k in kinds]}")
        linear = [m for m in layers if isinstance(m, torch.nn.Linear)]
        self.weights = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
                        for m in linear]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits, one per row of the encoded float32 matrix ``x``."""
        h = x
        for w, b in self.weights[:-1]:
            h = np.maximum(h @ w + b, 0.0)
        w, b = self.weights[-1]
        return (h @ w + b).reshape(len(x))


class TabularPredictor(kserve.Model):
    """Serves one trained tabular model (v1 and v2), validated against its model card."""

    def __init__(self, name: str, model_uri: str, version: str | None = None) -> None:
        super().__init__(name, return_response_headers=True)
        self.model_uri = model_uri
        self.requested_version = version
        self.version = version or ""
        self.lineage: Lineage | None = None
        self.schema: FeatureSchema | None = None
        self.threshold = DEFAULT_THRESHOLD
        self._forward: DenseForward | None = None
        self._counts: dict[int, Any] = {}
        self.load_error = ""  # why load() failed, set by the server's background loader

    def start(self) -> None:
        """KServe's default marks a model ready on start; readiness here comes only from ``load``."""

    def load(self) -> bool:
        """Load weights and card (no pickle), then run the warm-up prediction; only then is the model ready."""
        net, card = load_model(self.model_uri)
        threshold = float(card.get("threshold", DEFAULT_THRESHOLD))
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"{self.model_uri}: model card threshold {threshold} is not between 0 and 1")
        self.schema, self.threshold = FeatureSchema(card), threshold
        self._forward = checked_forward(net, self.schema.width)
        self.lineage = Lineage.from_card(card, self.model_uri, self.requested_version)
        self.version = self.lineage.version
        self._counts = {c: PREDICTIONS.labels(self.name, self.version, str(c)) for c in (0, 1)}
        self._warm_up()
        self.ready = True
        log.info("model %s version %s ready (%d features, threshold %s) from %s", self.name, self.version,
                 len(self.schema.features), self.threshold, self.model_uri)
        return True

    def _warm_up(self) -> None:
        assert self.schema is not None
        proba, _ = self._score(self.schema.v1_batch({"instances": [self.schema.synthetic_row()]}), count=False)
        if proba.shape != (1,) or not 0.0 <= float(proba[0]) <= 1.0:
            raise RuntimeError(f"warm-up prediction failed: probabilities {proba!r} for a row built from the card")

    def _loaded(self) -> FeatureSchema:
        if not self.ready or self.schema is None:
            raise ModelNotReady(self.name, "weights not loaded or warm-up not passed yet")
        return self.schema

    def get_input_types(self) -> list[dict[str, Any]]:
        return self._loaded().input_types()

    def get_output_types(self) -> list[dict[str, Any]]:
        self._loaded()
        return [{"name": "probability", "datatype": "FP64", "shape": [-1]},
                {"name": "class", "datatype": "INT64", "shape": [-1]}]

    def _score(self, batch: Batch, count: bool = True) -> tuple[np.ndarray, np.ndarray]:
        assert self.schema is not None and self._forward is not None
        n = batch.n
        logits = self._forward(self.schema.encode(batch)).astype(np.float64)
        with np.errstate(invalid="ignore"):  # NaN logits are reported just below
            proba = np.exp(-np.logaddexp(0.0, -logits))  # sigmoid, without overflow
        if not np.isfinite(proba).all():
            raise RuntimeError(f"model {self.name} {self.version} produced non-finite probabilities")
        classes = (proba >= self.threshold).astype(np.int64)
        if count:
            ones = int(classes.sum())
            if ones:
                self._counts[1].inc(ones)
            if n - ones:
                self._counts[0].inc(n - ones)
        return proba, classes

    def predict(self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None,
                response_headers: dict[str, str] | None = None) -> dict[str, Any] | InferResponse:
        schema = self._loaded()
        if response_headers is not None:
            response_headers[VERSION_HEADER] = self.version
        if isinstance(payload, InferRequest):
            proba, classes = self._score(schema.v2_batch(payload))
            n = len(proba)
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()), model_name=self.name, model_version=self.version,
                infer_outputs=[InferOutput("probability", [n], "FP64", proba), InferOutput("class", [n], "INT64",
                                                                                           classes)],
                use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs)
        proba, classes = self._score(schema.v1_batch(payload))
        return {"predictions": [{"probability": p, "class": c} for p, c in
                                zip(proba.tolist(), classes.tolist(), strict=True)],
                "model_name": self.name, "model_version": self.version}

