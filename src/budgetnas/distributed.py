"""torchrun / DistributedDataParallel helpers (NCCL on GPUs, gloo on CPU)."""
from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init(device: torch.device) -> tuple[int, int]:
    """Join the process group under torchrun: NCCL on GPUs, gloo on CPUs
    (BUDGETNAS_DIST_BACKEND overrides, e.g. gloo for several processes sharing one GPU)."""
    rank, size = world()
    if size > 1 and not dist.is_initialized():
        backend = os.environ.get("BUDGETNAS_DIST_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(local_gpu())
        dist.init_process_group(backend=backend)
    return rank, size


def local_gpu() -> int:
    """This process's GPU: its local rank, wrapped when processes outnumber GPUs."""
    return int(os.environ.get("LOCAL_RANK", "0")) % max(1, torch.cuda.device_count())


def device_for_rank(device: torch.device) -> torch.device:
    if device.type == "cuda" and world()[1] > 1:
        return torch.device("cuda", local_gpu())
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op without torchrun)."""
    if dist.is_initialized():
        dist.barrier()


def broadcast_state(module: torch.nn.Module) -> None:
    """Make every rank hold rank 0's parameters and buffers (BN statistics drift per rank)."""
    if dist.is_initialized():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def state_checksum(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def gather_strings(value: str) -> list[str]:
    if not dist.is_initialized():
        return [value]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
