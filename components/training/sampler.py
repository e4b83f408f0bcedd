"""The distributed sampler as index tensors: the same per-rank order as
``torch.utils.data.DistributedSampler(drop_last=False)``, without building Python lists every epoch."""

from __future__ import annotations

import math

import torch


def shard_indices(n: int, world_size: int, rank: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Rank ``rank``'s indices into ``n`` rows: shuffled by ``(seed, epoch)``, padded by wrapping around so every
    rank gets ``ceil(n / world_size)`` indices (equal batch counts keep DDP in step)."""
    if n < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need n >= 1 and 0 <= rank < world_size (n={n}, rank={rank}, world={world_size})")
    gen = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    total = math.ceil(n / world_size) * world_size
    return order.repeat(math.ceil(total / n))[:total][rank:total:world_size].to(device)
