"""The MLP, and the served model format: ``model.safetensors`` (no pickle) + ``model_card.json`` (features,
preprocessing, architecture, metrics, versions, lineage). ``load_model`` / ``predict_proba`` are all serving needs.

Lineage fields of the card (cards written before some of them still load; readers treat a missing one as
unknown): ``data_version``, ``data_uri``, ``training_set_sha256``, ``package_version``, ``image``
(``$CATALOG_IMAGE``), ``trainer_config``, ``metrics``; ``threshold`` is the decision threshold for class 1."""

from __future__ import annotations

import hashlib
import platform
from typing import Any

import numpy as np
import polars as pl
import safetensors
import safetensors.torch
import torch
from torch import nn

from components._core.artifacts import data_files, filesystem, open_atomic, read_json, write_json
from components.training.data import Preprocessing
from components.training.launch import CARD_FILE

WEIGHTS_FILE = "model.safetensors"
CARD_FORMAT = "tabular-mlp-binary/v1"
IMAGE_ENV = "CATALOG_IMAGE"  # the container image the trainer runs in, recorded in the card
DATA_VERSION_ENV = "CATALOG_DATA_VERSION"  # the data version when the trainer is not given --data-version
_CHUNK = 1 << 20


class MLP(nn.Module):
    """Feed-forward binary classifier: [Linear, ReLU, Dropout] per hidden size, then one logit."""

    def __init__(self, in_features: int, hidden_sizes: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.architecture = {"in_features": in_features, "hidden_sizes": list(hidden_sizes),
                             "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies of the parameters and buffers."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Library versions that produced (and can load) the model."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "polars": pl.__version__, "safetensors": safetensors.__version__}


def _file_sha256(fs: Any, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def training_set_sha256(data_uri: str) -> str:
    """SHA-256 of the training data the trainer read: a file's bytes; for a folder, of its data files (those
    ``read_table`` reads) in sorted order, each as ``relative path NUL sha256 of its bytes`` on one line."""
    fs, root = filesystem(data_uri)
    if fs.isfile(root):
        return _file_sha256(fs, root)
    files, _ = data_files(data_uri)
    root = root.rstrip("/")
    h = hashlib.sha256()
    for f in files:
        fs, path = filesystem(f)
        h.update(f"{path[len(root):].lstrip('/')}\0{_file_sha256(fs, path)}\n".encode())
    return h.hexdigest()


def save_model(model: MLP, card: dict[str, Any], model_uri: str) -> dict[str, Any]:
    """Write the weights (safetensors) and the card (plus format, architecture, digest, versions)."""
    state = cpu_state(model)
    full = {**card, "format": CARD_FORMAT, "weights_file": WEIGHTS_FILE, "architecture": model.architecture,
            "weights_sha256": weights_digest(state), "versions": versions()}
    with open_atomic(f"{model_uri.rstrip('/')}/{WEIGHTS_FILE}", "wb") as fh:
        fh.write(safetensors.torch.save(state, metadata={"format": CARD_FORMAT}))
    write_json(full, f"{model_uri.rstrip('/')}/{CARD_FILE}")
    return full


def load_model(model_uri: str) -> tuple[MLP, dict[str, Any]]:
    """Load a saved model for inference (eval mode, CPU) without executing any pickle."""
    card = read_json(f"{model_uri.rstrip('/')}/{CARD_FILE}")
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{model_uri}: model format {card.get('format')!r} is not {CARD_FORMAT}")
    fs, path = filesystem(f"{model_uri.rstrip('/')}/{card['weights_file']}")
    with fs.open(path, "rb") as fh:
        state = safetensors.torch.load(fh.read())
    arch = card["architecture"]
    model = MLP(int(arch["in_features"]), [int(h) for h in arch["hidden_sizes"]], float(arch["dropout"]))
    model.load_state_dict(state, strict=True)
    if weights_digest(cpu_state(model)) != card["weights_sha256"]:
        raise ValueError(f"{model_uri}: weights do not match the digest in the model card")
    return model.eval(), card


def predict_proba(model: nn.Module, card: dict[str, Any], rows: pl.DataFrame) -> np.ndarray:
    """Probability of label 1 for each row, after the card's preprocessing."""
    x = torch.from_numpy(Preprocessing.from_dict(card["preprocessing"]).transform(rows))
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(x.to(device))
    return torch.sigmoid(logits).cpu().numpy().astype(np.float64)
