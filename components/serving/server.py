"""One ``kserve.ModelServer`` serving one trained model with ``TabularPredictor`` (HTTP only, one worker).

``python -m components.serving.server --model-uri URI --name NAME --http-port PORT [--model-version V]``

The server listens at once; the model loads and warms up in the background, so ``/v2/models/{name}/ready``
answers 503 until it can really predict. A model that fails to load or warm up stops the server with exit
status 1 (in Kubernetes: a crash the rollout sees, never a Ready pod that cannot predict). SIGTERM stops it
cleanly (exit 0). Besides KServe's routes, ``GET /v2/models/{name}/lineage`` (and ``/v1/models/{name}/lineage``)
answer the model's lineage from its card; v2 model metadata lists its version under ``versions``.

In a ServingRuntime the same module takes KServe's own argument names, e.g. ``args: ["--model_name={{.Name}}",
"--model_dir=/mnt/models", "--http_port=8080"]`` (``--model_dir`` is ``--model-uri``). The other
``kserve.model_server`` arguments are accepted; those KServe reads itself (logging, keep-alive, event loop)
apply, while gRPC stays off and the worker count at 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import torch
from fastapi import FastAPI
from kserve import Model, ModelServer
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane

from components.serving.predictor import TabularPredictor
from components.serving.processes import watch_parent

log = logging.getLogger("components.serving.server")
STARTUP_WAIT_S = 120.0  # how long a failed load waits for the HTTP server before stopping it


class VersionedDataPlane(DataPlane):
    """KServe's data plane, with each model's version in its v2 metadata (``versions``)."""

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        metadata: dict[str, Any] = await super().model_metadata(model_name)
        version = getattr(self.get_model_from_registry(model_name), "version", "")
        if version:
            metadata["versions"] = [version]
        return metadata


def add_lineage_routes(app: FastAPI, registry: ModelRepository) -> None:
    """``GET /v2/models/{name}/lineage`` and ``/v1/models/{name}/lineage``: the served model's version and
    lineage (404 for an unknown model, 503 until it is ready)."""

    async def lineage(model_name: str) -> dict[str, Any]:
        model = registry.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        info = getattr(model, "lineage", None)
        if not model.ready or info is None:
            raise ModelNotReady(model_name, "lineage is known once the model is loaded")
        return {"name": model_name, "version": info.version, "lineage": info.to_dict()}

    for prefix in ("/v2", "/v1"):
        app.add_api_route(prefix + "/models/{model_name}/lineage", lineage, methods=["GET"])


def build_server(predictor: Model, http_port: int) -> ModelServer:
    """A ModelServer (gRPC off, one worker) holding ``predictor`` (registered as it is: ours is not loaded
    yet) with the versioned metadata and the lineage routes on KServe's application."""
    import kserve.model_server

    server = ModelServer(http_port=http_port, enable_grpc=False, workers=1)
    server.dataplane = VersionedDataPlane(model_registry=server.registered_models)
    server.register_model(predictor)
    add_lineage_routes(kserve.model_server.app, server.registered_models)
    return server


def load_in_background(predictor: TabularPredictor, http_port: int,
                       on_failure: Callable[[], None] | None = None) -> threading.Thread:
    """Load and warm up ``predictor`` in a thread. On failure the error is logged and kept on
    ``predictor.load_error``; then, once the HTTP server answers (so its SIGTERM handling is in place),
    ``on_failure`` runs (default: SIGTERM to this process, which ``main`` turns into exit status 1)."""

    def stop_self() -> None:
        deadline = time.monotonic() + STARTUP_WAIT_S
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{http_port}/v2/health/live", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    def run() -> None:
        try:
            predictor.load()
        except Exception as err:  # any failure means this server must not pretend to serve
            predictor.load_error = f"{type(err).__name__}: {err}"
            log.error("model %s failed to load or warm up from %s: %s", predictor.name, predictor.model_uri,
                      predictor.load_error)
            (on_failure or stop_self)()

    thread = threading.Thread(target=run, name=f"load-{predictor.name}", daemon=True)
    thread.start()
    return thread


def _log_like_kserve() -> None:
    """Our messages on stderr beside KServe's, without touching the root logger (KServe configures its own
    loggers only when no handler is found up the tree)."""
    ours = logging.getLogger("components")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False


def parser() -> argparse.ArgumentParser:
    """Our arguments on top of KServe's own (``kserve.model_server.parser``)."""
    import kserve.model_server

    p = argparse.ArgumentParser(prog="python -m components.serving.server", description=__doc__,
                                parents=[kserve.model_server.parser],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-uri", "--model_dir", dest="model_uri", required=True,
                   help="model folder (model.safetensors + model_card.json): local path or fsspec URI")
    p.add_argument("--name", dest="model_name", help="model name in the URLs (KServe: --model_name)")
    p.add_argument("--http-port", dest="http_port", type=int, help="HTTP port (KServe: --http_port)")
    p.add_argument("--model-version", default=None,
                   help="version reported by the model (default: first 12 hex digits of its weights digest)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM (exit 0); exit 1 when the model cannot be loaded or warmed up."""
    args = parser().parse_args(argv)
    torch.set_num_threads(1)
    watch_parent()
    predictor = TabularPredictor(args.model_name, args.model_uri, args.model_version)
    server = build_server(predictor, args.http_port)  # configures KServe's logging as KServe does
    _log_like_kserve()
    load_in_background(predictor, args.http_port)
    server.start([])
    if predictor.load_error:
        log.error("stopped: model %s did not load: %s", predictor.name, predictor.load_error)
        return 1
    log.info("model server for %s stopped", predictor.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
