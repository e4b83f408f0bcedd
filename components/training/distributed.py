"""Who am I in the job: rank, world size and rendezvous address from ``torch.distributed.run`` /
PyTorchJob variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or Vertex AI's
``CLUSTER_SPEC``; and process-group setup (NCCL on CUDA, gloo on CPU)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

TRAINER_POOLS = ("workerpool0", "workerpool1")  # Vertex: primary replica, then workers


class DistributedEnvError(RuntimeError):
    """The environment describes an impossible or unsupported cluster."""


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0
    source: str = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _vertex(spec_json: str, environ: Mapping[str, str]) -> DistEnv:
    try:
        spec = json.loads(spec_json)
        cluster, task = spec["cluster"], spec["task"]
        pools = [list(cluster.get(p) or []) for p in TRAINER_POOLS]
        kind, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise DistributedEnvError(f"CLUSTER_SPEC is not a Vertex cluster spec: {err!r}") from None
    if kind not in TRAINER_POOLS:
        raise DistributedEnvError(f"the trainer runs in worker pools {TRAINER_POOLS}, not in {kind!r}")
    if len(pools[0]) != 1:
        raise DistributedEnvError(f"workerpool0 must hold exactly one replica, has {len(pools[0])}")
    rank = index if kind == "workerpool0" else 1 + index
    world = len(pools[0]) + len(pools[1])
    host, _, port = pools[0][0].rpartition(":")
    return DistEnv(rank, world, int(environ.get("LOCAL_RANK", 0)), environ.get("MASTER_ADDR", host),
                   int(environ.get("MASTER_PORT", port or 29500)), "vertex")


def resolve_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read the distributed layout; explicit ``RANK``/``WORLD_SIZE`` win over ``CLUSTER_SPEC``."""
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        source = "torchrun" if "TORCHELASTIC_RUN_ID" in environ else "env"
        env = DistEnv(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)),
                      environ.get("MASTER_ADDR", ""), int(environ.get("MASTER_PORT", 0)), source)
    elif environ.get("CLUSTER_SPEC"):
        env = _vertex(environ["CLUSTER_SPEC"], environ)
    else:
        return DistEnv()
    if not 0 <= env.rank < env.world_size:
        raise DistributedEnvError(f"rank {env.rank} is outside world size {env.world_size}")
    if env.world_size > 1 and not (env.master_addr and env.master_port):
        raise DistributedEnvError("MASTER_ADDR and MASTER_PORT are required when WORLD_SIZE > 1")
    return env


def pick_device(requested: str, env: DistEnv) -> torch.device:
    """CUDA device ``local_rank`` when asked for or (auto) present, else CPU."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DistributedEnvError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_group(env: DistEnv, device: torch.device, timeout_s: float = 1800,
               environ: MutableMapping[str, str] | None = None) -> None:
    """Join the process group (``env://``, so torchrun's own store is reused); no-op for one process."""
    if env.world_size == 1:
        return
    environ = os.environ if environ is None else environ
    environ.setdefault("MASTER_ADDR", env.master_addr)
    environ.setdefault("MASTER_PORT", str(env.master_port))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://", rank=env.rank,
                            world_size=env.world_size, timeout=timedelta(seconds=timeout_s))
