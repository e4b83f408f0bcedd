"""Trainer throughput against a bare PyTorch loop on the same model, data split and hyperparameters.

Figures: bare loop (1 process); the trainer in process (1 rank: train-loop throughput, and end to end with
data loading, evaluation, checkpoints and export); the trainer under ``torch.distributed.run``, 2 gloo ranks.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time

import numpy as np
import polars as pl
import torch
from torch import nn

from components.data.breast_cancer import breast_cancer_events
from components.training.config import TrainerConfig
from components.training.data import prepare
from components.training.distributed import DistEnv
from components.training.launch import LaunchSpec, LocalOptions, read_final_metrics, run
from components.training.local import LocalTrainingBackend
from components.training.model import MLP
from components.training.trainer import train


def tiled_breast_cancer(rows: int, seed: int = 0) -> pl.DataFrame:
    """breast_cancer repeated to ``rows`` rows, features jittered by 5% of their spread."""
    base = breast_cancer_events()
    df = pl.concat([base] * math.ceil(rows / base.height)).head(rows)
    rng = np.random.default_rng(seed)
    feats = [c for c in df.columns if c not in ("entity_id", "event_timestamp", "label")]
    return df.with_columns(
        pl.Series("entity_id", np.arange(1, rows + 1, dtype=np.int64)),
        *(pl.Series(c, v + rng.normal(0, 0.05 * (float(v.std()) or 1.0), rows))
          for c, v in ((c, df[c].to_numpy()) for c in feats)))


def bare_loop(x: torch.Tensor, y: torch.Tensor, cfg: TrainerConfig) -> float:
    """Samples/s of the plainest loop: randperm, slice, forward, backward, AdamW step."""
    torch.manual_seed(cfg.seed)
    model = MLP(x.shape[1], cfg.hidden_sizes, cfg.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    start = time.perf_counter()
    for _ in range(cfg.max_epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), cfg.batch_size):
            b = perm[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[b]), y[b]).backward()
            opt.step()
    return len(y) * cfg.max_epochs / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Print samples/s figures (medians over alternating repeats), then ratio lines."""
    p = argparse.ArgumentParser(prog="bench train", description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="paired in-process runs, order alternating")
    p.add_argument("--world-size", type=int, default=2)
    args = p.parse_args(argv)
    cfg = TrainerConfig.parse({"max_epochs": args.epochs, "batch_size": args.batch_size,
                               "keep_checkpoints": 1, "early_stopping": {"patience": 0}})
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data_uri = f"{tmp}/data.parquet"
        df = tiled_breast_cancer(args.rows)
        df.write_parquet(data_uri)
        split = prepare(df, cfg)
        x, y = torch.from_numpy(split.x[0]), torch.from_numpy(split.y[0])
        n = len(y) * args.epochs
        bare, inner, outer = [], [], []

        def one_trainer(r: int) -> None:
            t0 = time.perf_counter()
            final = train(cfg, data_uri, f"{tmp}/one-{r}", DistEnv())
            outer.append(n / (time.perf_counter() - t0))
            inner.append(float(final["samples_per_second"]))

        bare_loop(x[:20_000], y[:20_000], cfg)  # warm-up: first-touch allocations and kernels
        for r in range(args.repeats):
            if r % 2:
                one_trainer(r)
            bare.append(bare_loop(x, y, cfg))
            if not r % 2:
                one_trainer(r)
        spec = LaunchSpec.parse({"name": "bench-train", "trainer_config": cfg.model_dump(mode="json"),
                                 "data_uri": data_uri, "output_uri": f"{tmp}/multi",
                                 "world_size": args.world_size})
        t0 = time.perf_counter()
        run(spec, LocalTrainingBackend(log_dir=tmp, options=LocalOptions.parse(
            {"stream_logs": False, "wait": {"poll_interval_s": 0.2}})))
        multi = read_final_metrics(spec.output_uri)
        multi_outer = n / (time.perf_counter() - t0)
    b, i, o, m = (statistics.median(v) for v in (bare, inner, outer, [float(multi["samples_per_second"])]))
    paired = statistics.median(t / u for t, u in zip(inner, bare, strict=True))
    paired_outer = statistics.median(t / u for t, u in zip(outer, bare, strict=True))
    ws = args.world_size
    print(f"data: {args.rows} rows ({len(y)} train), {x.shape[1]} inputs, MLP {cfg.hidden_sizes}, "
          f"batch {cfg.batch_size}, {args.epochs} epochs, median of {args.repeats}, 1 intra-op thread/rank")
    print(f"bare loop, 1 process:                      {b:12,.0f} samples/s")
    print(f"trainer, 1 process, train loop:            {i:12,.0f} samples/s")
    print(f"trainer, 1 process, end to end:            {o:12,.0f} samples/s  (+ load, eval, ckpt, export)")
    print(f"trainer, {ws} ranks gloo, train loop:        {m:12,.0f} samples/s  (global)")
    print(f"trainer, {ws} ranks gloo, end to end:        {multi_outer:12,.0f} samples/s  (+ process start)")
    print(f"ratio trainer/bare, 1 process, train loop: {paired:.3f} (goal >= 0.95; median of paired runs)")
    print(f"ratio trainer/bare, 1 process, end to end: {paired_outer:.3f}")
    print(f"ratio trainer {ws} ranks/bare 1 process, train loop: {m / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
