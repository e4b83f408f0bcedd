"""Epoch checkpoints in the artifact store: ``checkpoints/epoch-000007.pt``, written atomically by rank 0 and
read back with ``torch.load(weights_only=True)`` (tensors and plain containers only, no code runs)."""

from __future__ import annotations

import io
import re
from typing import Any

import torch

from components._core.artifacts import filesystem, open_atomic
from components.training.launch import CHECKPOINTS_DIR, output_file

_NAME = re.compile(r"epoch-(\d{6})\.pt")


def checkpoint_dir(output_uri: str) -> str:
    """The checkpoint folder under a trainer output."""
    return output_file(output_uri, CHECKPOINTS_DIR)


def _uri(output_uri: str, epoch: int) -> str:
    return f"{checkpoint_dir(output_uri)}/epoch-{epoch:06d}.pt"


def list_checkpoints(output_uri: str) -> list[tuple[int, str]]:
    """(epoch, URI) of every complete checkpoint, oldest first (temporary files are ignored)."""
    fs, path = filesystem(checkpoint_dir(output_uri))
    if not fs.exists(path):
        return []
    found = []
    for p in fs.ls(path, detail=False):
        m = _NAME.fullmatch(str(p).rstrip("/").rsplit("/", 1)[-1])
        if m:
            found.append((int(m.group(1)), _uri(output_uri, int(m.group(1)))))
    return sorted(found)


def remove_partial(output_uri: str) -> None:
    """Delete temporary files a killed writer left in the checkpoint folder (call from the only writer)."""
    fs, path = filesystem(checkpoint_dir(output_uri))
    if fs.exists(path):
        for p in fs.ls(path, detail=False):
            if str(p).rstrip("/").rsplit("/", 1)[-1].startswith(".tmp-"):
                fs.rm(p, recursive=True)


def latest_checkpoint(output_uri: str) -> str | None:
    """URI of the newest checkpoint, or None."""
    found = list_checkpoints(output_uri)
    return found[-1][1] if found else None


def save_checkpoint(state: dict[str, Any], output_uri: str, epoch: int, keep: int) -> str:
    """Write ``state`` as epoch ``epoch`` atomically, keep only the ``keep`` newest; returns its URI."""
    uri = _uri(output_uri, epoch)
    buf = io.BytesIO()
    torch.save(state, buf)
    with open_atomic(uri, "wb") as fh:
        fh.write(buf.getvalue())
    fs, _ = filesystem(uri)
    for _, old in list_checkpoints(output_uri)[:-keep]:
        fs.rm(filesystem(old)[1])
    return uri


def load_checkpoint(uri: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint without executing pickles (``weights_only=True``)."""
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as fh:
        data = fh.read()
    state: dict[str, Any] = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    return state
