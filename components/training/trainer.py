"""The training program. One process per rank; runs unchanged alone, under ``torch.distributed.run``, in
PyTorchJob pods and in Vertex AI worker pools. ``components.training.launch`` states its file contract.

``python -m components.training.trainer --config <json-or-uri> --data-uri URI --output-uri URI
[--data-version V]`` (the data version defaults to ``$CATALOG_DATA_VERSION``; it goes into the model card)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import components
from components._core.artifacts import filesystem, open_atomic, read_table, write_json
from components._core.config import ConfigError
from components.training.checkpoint import latest_checkpoint, load_checkpoint, remove_partial, save_checkpoint
from components.training.config import TrainerConfig
from components.training.data import Splits, prepare
from components.training.distributed import DistEnv, init_group, pick_device, resolve_env
from components.training.launch import FINAL_METRICS_FILE, METRICS_FILE, MODEL_DIR, output_file
from components.training.metrics import binary_metrics
from components.training.model import (
    DATA_VERSION_ENV,
    IMAGE_ENV,
    MLP,
    cpu_state,
    save_model,
    training_set_sha256,
    weights_digest,
)
from components.training.sampler import shard_indices
from components.training.stopping import Progress

log = logging.getLogger("components.training.trainer")
EVAL_BATCH = 8192


class TrainingError(RuntimeError):
    """Training cannot go on (incompatible checkpoint, diverged replicas)."""


@dataclass
class _Run:
    """What one rank holds while training."""

    cfg: TrainerConfig
    env: DistEnv
    device: torch.device
    data: Splits
    tensors: list[tuple[torch.Tensor, torch.Tensor]]
    model: MLP
    net: nn.Module  # the DDP wrapper, or the model itself for one process
    opt: torch.optim.Optimizer
    fingerprint: str


def _fingerprint(cfg: TrainerConfig, data: Splits) -> str:
    """Identifies what a checkpoint may be resumed with: config (less max_epochs/keep) and split sizes."""
    d = cfg.model_dump(mode="json", exclude={"max_epochs", "keep_checkpoints"})
    d["data"] = {"rows": [len(y) for y in data.y], "preprocessing": data.preprocessing.to_dict()}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _setup(cfg: TrainerConfig, data_uri: str, env: DistEnv) -> _Run:
    device = pick_device(cfg.device, env)
    if device.type == "cpu":
        torch.set_num_threads(1)
    init_group(env, device)
    data = prepare(read_table(data_uri), cfg)
    tensors = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
               for x, y in zip(data.x, data.y, strict=True)]
    torch.manual_seed(cfg.seed)
    model = MLP(data.preprocessing.width, cfg.hidden_sizes, cfg.dropout).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return _Run(cfg, env, device, data, tensors, model, model, opt, _fingerprint(cfg, data))


Resumed = tuple[int, Progress, list[dict[str, Any]], dict[str, torch.Tensor]]


def _resume(run: _Run, output_uri: str) -> Resumed:
    """Load the newest checkpoint (rank 0 picks it, every rank loads it); start fresh when there is none."""
    if run.env.is_main:
        remove_partial(output_uri)
    picked = [latest_checkpoint(output_uri) if run.env.is_main else None]
    if run.env.world_size > 1:
        dist.broadcast_object_list(picked, src=0)
    if picked[0] is None:
        return 0, Progress(), [], {}
    state = load_checkpoint(picked[0], run.device)
    if state["fingerprint"] != run.fingerprint:
        raise TrainingError(f"checkpoint {picked[0]} was written for another config or data set; "
                            "use a new output_uri or delete its checkpoints/")
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    log.info("resumed from %s (epoch %d)", picked[0], state["epoch"])
    return int(state["epoch"]), Progress.from_dict(state["progress"]), list(state["history"]), state["best"]


def _train_epoch(run: _Run, epoch: int) -> tuple[float, int]:
    """One pass over this rank's shard; returns (mean loss across ranks, samples seen by all ranks)."""
    x, y = run.tensors[0]
    order = shard_indices(len(y), run.env.world_size, run.env.rank, seed=run.cfg.seed, epoch=epoch,
                          device=run.device)
    torch.manual_seed(_epoch_seed(run.cfg.seed, epoch, run.env.rank))  # dropout: resumable, per rank
    run.net.train()
    loss_fn = nn.BCEWithLogitsLoss()
    losses: list[torch.Tensor] = []
    bs = run.cfg.batch_size
    for start in range(0, len(order), bs):
        b = order[start:start + bs]
        run.opt.zero_grad(set_to_none=True)
        loss = loss_fn(run.net(x[b]), y[b])
        loss.backward()
        run.opt.step()
        losses.append(loss.detach())
    sizes = torch.tensor([min(bs, len(order) - s) for s in range(0, len(order), bs)], device=run.device)
    total = torch.stack([(torch.stack(losses) * sizes).sum(), sizes.sum().to(torch.float32)])
    if run.env.world_size > 1:
        dist.all_reduce(total)
    return float(total[0] / total[1]), int(total[1])


def _evaluate(run: _Run, split: int, prefix: str) -> dict[str, float]:
    """Metrics of the whole split: each rank scores a strided shard, logits are gathered and de-duplicated."""
    x, y = run.tensors[split]
    n, ws = len(y), run.env.world_size
    idx = shard_indices(n, ws, run.env.rank, shuffle=False, device=run.device)
    run.model.eval()
    with torch.no_grad():
        logits = torch.cat([run.model(x[idx[i:i + EVAL_BATCH]]) for i in range(0, len(idx), EVAL_BATCH)])
    if ws > 1:
        parts_i = [torch.empty_like(idx) for _ in range(ws)]
        parts_z = [torch.empty_like(logits) for _ in range(ws)]
        dist.all_gather(parts_i, idx)
        dist.all_gather(parts_z, logits)
        idx, logits = torch.cat(parts_i), torch.cat(parts_z)
    order, first = np.unique(idx.cpu().numpy(), return_index=True)
    return binary_metrics(run.data.y[split][order], logits.cpu().numpy()[first], prefix)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _write_history(history: list[dict[str, Any]], output_uri: str) -> None:
    with open_atomic(output_file(output_uri, METRICS_FILE)) as fh:
        fh.writelines(json.dumps(_clean(h), sort_keys=True) + "\n" for h in history)


def _fit(run: _Run, output_uri: str) -> tuple[Progress, list[dict[str, Any]], int]:
    """Epoch loop with checkpoints, metrics and early stopping; returns progress, history, resumed epoch."""
    cfg, env = run.cfg, run.env
    done, progress, history, best = _resume(run, output_uri)
    if env.world_size > 1:
        ids = [run.device.index] if run.device.type == "cuda" else None
        run.net = DistributedDataParallel(run.model, device_ids=ids)
    epoch = done
    while epoch < cfg.max_epochs and not progress.stopped_early:
        epoch += 1
        t0 = time.perf_counter()
        train_loss, samples = _train_epoch(run, epoch)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        progress.train_samples += samples
        progress.train_seconds += seconds
        row = {"epoch": epoch, "train_loss": train_loss, **_evaluate(run, 1, "val"),
               "samples_per_second": samples / seconds}
        if progress.update(row[cfg.early_stopping.metric], epoch, cfg.early_stopping):
            best = cpu_state(run.model)
        history.append(row)
        if env.is_main:
            save_checkpoint({"epoch": epoch, "model": cpu_state(run.model), "optimizer": run.opt.state_dict(),
                             "progress": progress.to_dict(), "history": history, "best": best,
                             "fingerprint": run.fingerprint}, output_uri, epoch, cfg.keep_checkpoints)
            _write_history(history, output_uri)
            log.info(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if cfg.early_stopping.restore_best and best:
        run.model.load_state_dict(best)
    return progress, history, done


def _lineage(data_uri: str, data_version: str) -> dict[str, Any]:
    """The card's lineage fields: what the model was trained on, by which package and image."""
    return {"data_uri": data_uri, "data_version": data_version, "training_set_sha256": training_set_sha256(data_uri),
            "package_version": components.__version__, "image": os.environ.get(IMAGE_ENV, "")}


def _finish(run: _Run, progress: Progress, history: list[dict[str, Any]], resumed: int, data_uri: str,
            output_uri: str, data_version: str) -> dict[str, Any]:
    """Check replicas agree, score val and test, write the model, its card and final_metrics.json."""
    digest = weights_digest(cpu_state(run.model))
    log.info("final weights_sha256=%s", digest)
    if run.env.world_size > 1:
        digests: list[Any] = [None] * run.env.world_size
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise TrainingError(f"replicas diverged: weight digests per rank {digests}")
    metrics = {**_evaluate(run, 1, "val"), **_evaluate(run, 2, "test")}
    final = _clean({
        **metrics, "epochs_run": len(history), "best_epoch": progress.best_epoch,
        "stopped_early": progress.stopped_early and len(history) < run.cfg.max_epochs,
        "resumed_from_epoch": resumed,
        "samples_per_second": (progress.train_samples / progress.train_seconds) if progress.train_seconds
        else None,
        "world_size": run.env.world_size, "rows": {"train": len(run.data.y[0]), "val": len(run.data.y[1]),
                                                   "test": len(run.data.y[2])},
        "weights_sha256": digest,
    })
    if run.env.is_main:
        features = [{"name": n, "kind": k, "dtype": run.data.dtypes[n]} for n, k in run.data.kinds.items()]
        save_model(run.model, {
            "task": "binary_classification", "label_column": run.cfg.label_column, "features": features,
            "preprocessing": run.data.preprocessing.to_dict(), "output": "sigmoid(logit) = P(label = 1)",
            "metrics": final, "trainer_config": run.cfg.model_dump(mode="json"), "threshold": 0.5,
            **_lineage(data_uri, data_version),
        }, output_file(output_uri, MODEL_DIR))
        write_json(final, output_file(output_uri, FINAL_METRICS_FILE))
    if run.env.world_size > 1:
        dist.barrier()
    return final


def train(cfg: TrainerConfig, data_uri: str, output_uri: str, env: DistEnv | None = None,
          data_version: str | None = None) -> dict[str, Any]:
    """Train (resuming from ``output_uri``'s newest checkpoint) and return the final metrics. ``data_version``
    (default ``$CATALOG_DATA_VERSION``, else empty) is recorded in the model card."""
    env = env or resolve_env()
    if data_version is None:
        data_version = os.environ.get(DATA_VERSION_ENV, "")
    run = _setup(cfg, data_uri, env)
    try:
        log.info("rank %d/%d on %s: %d train, %d val, %d test rows, %d inputs", env.rank, env.world_size,
                 run.device, *(len(y) for y in run.data.y), run.data.preprocessing.width)
        progress, history, resumed = _fit(run, output_uri)
        return _finish(run, progress, history, resumed, data_uri, output_uri, data_version)
    finally:
        if env.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _read_config(value: str) -> TrainerConfig:
    if value.lstrip().startswith("{"):
        return TrainerConfig.parse(value)
    fs, path = filesystem(value)
    with fs.open(path, "r") as fh:
        return TrainerConfig.parse(fh.read())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 2 on a bad config, non-zero on any failure."""
    parser = argparse.ArgumentParser(prog="python -m components.training.trainer", description=__doc__)
    parser.add_argument("--config", required=True, help="TrainerConfig as JSON, or a path/URI to a JSON file")
    parser.add_argument("--data-uri", required=True, help="training table (Parquet/CSV file or folder)")
    parser.add_argument("--output-uri", required=True, help="folder for metrics, checkpoints and the model")
    parser.add_argument("--data-version", default=None,
                        help=f"version of the training data, recorded in the model card (default ${DATA_VERSION_ENV})")
    args = parser.parse_args(argv)
    env = resolve_env()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format=f"%(asctime)s [rank {env.rank}] %(levelname)s %(message)s")
    try:
        cfg = _read_config(args.config)
    except ConfigError as err:
        log.error("%s", err)
        return 2
    final = train(cfg, args.data_uri, args.output_uri, env, args.data_version)
    log.info("done: %s", json.dumps(final, sort_keys=True))
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(main)())
