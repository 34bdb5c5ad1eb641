"""One place decides where work runs: the device, and the processes of a torchrun launch.

`setup("auto")` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE). Several
processes join one process group (gloo on CPU, NCCL on CUDA, chosen by the device) and share the work:
every rank takes a disjoint share of each global batch (`shard`), gradients are summed across ranks
(`sum_gradients`) so every step equals the one-process step on the whole batch, and labelling rows
are split and gathered (`gather_rows`). Rank 0 alone writes files and prints; the other ranks' stdout
and stderr go to /dev/null (their errors still reach the terminal, naming the rank: harness/cli.py).
One process without torchrun is the same code with world 1, where every collective is a no-op.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from harness.errors import HarnessError

# A rank waits this long at a collective for the others. Rank 0 alone augments the transfer set
# while the others wait, which takes over an hour for the paper's 1.35M SST-2 rows on 2 cores; a rank
# that dies does not make the others wait this long: torchrun stops the whole group.
TIMEOUT = datetime.timedelta(hours=6)
RANK_SEED_STRIDE = 1_000_003  # rank r draws dropout from seed + r * stride; rank 0 keeps the one-process stream


@dataclass(frozen=True)
class Runtime:
    """Where this process runs and which share of the work is its own.

    Attributes:
        device: the torch device every model and batch of this process lives on.
        rank: this process's rank among `world` (0 when alone).
        world: the number of processes (1 without torchrun).
        local_rank: its rank on this machine (picks the GPU).
        local_world: processes on this machine (they share its cores).
    """

    device: torch.device = torch.device("cpu")
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files, prints and draws progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


_CURRENT = [Runtime()]


def current() -> Runtime:
    """The runtime `setup` made (one CPU process until then)."""
    return _CURRENT[0]


def resolve(spec: str, local_rank: int = 0) -> torch.device:
    """`auto` (this rank's GPU when there is one, else the CPU), `cpu`, `cuda` (this rank's GPU) or `cuda:K`.

    Raises:
        HarnessError: CUDA asked for where there is none, or an unknown device.
    """
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise HarnessError(f"--device {spec}: no CUDA device on this machine (use --device cpu or auto)")
        index = local_rank if spec == "cuda" else int(spec.split(":")[1]) if spec.split(":")[1].isdigit() else -1
        if not 0 <= index < torch.cuda.device_count():
            raise HarnessError(f"--device {spec}: this machine has CUDA devices 0..{torch.cuda.device_count() - 1}")
        return torch.device(f"cuda:{index}")
    raise HarnessError(f"--device {spec}: expected auto, cpu, cuda or cuda:K")


def setup(spec: str = "auto") -> Runtime:
    """Pick the device and, under torchrun, join the process group; other ranks are silenced."""
    env = {k: int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0),
                                                     ("LOCAL_WORLD_SIZE", 1))}
    device = resolve(spec, env["LOCAL_RANK"])
    rt = Runtime(device, env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"])
    if rt.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT,
                                **({"device_id": device} if device.type == "cuda" else {}))
    if not rt.main:
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    _CURRENT[0] = rt
    return rt


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def to_device(x, device: torch.device | None = None):
    """`x` (a tensor, a transformers batch, or a list/tuple/dict of them) on the runtime's device."""
    device = device or current().device
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    if isinstance(x, dict) and not hasattr(x, "to"):
        return {k: to_device(v, device) for k, v in x.items()}
    return x.to(device) if hasattr(x, "to") else x


def shard(idx: np.ndarray) -> np.ndarray:
    """This rank's share of a global batch (every `world`-th row, from its rank on)."""
    rt = current()
    return idx[rt.rank :: rt.world]


def barrier() -> None:
    if current().distributed:
        dist.barrier()


def broadcast(values: list[float]) -> list[float]:
    """Rank 0's `values` on every rank (decisions all ranks must take alike: dev scores, reuse or not)."""
    rt = current()
    if not rt.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.broadcast(t, 0)
    return t.tolist()


def sum_gradients(params: Iterable[torch.nn.Parameter], row_sparse: Iterable[torch.nn.Parameter] = ()) -> None:
    """Sum every parameter's gradient across ranks (None counts as zeros).

    Dense gradients travel as one flat buffer (one all-reduce per step, not one per tensor). Embedding
    tables travel as the rows a rank touched: sparse gradients (the students' trainable embeddings),
    and the dense gradients of the tables named in `row_sparse` (a teacher's word embeddings: 11.7M
    floats of MiniLM's 22.7M, of which a batch touches a few hundred rows). The summed gradient is
    sparse again where it was sparse, so rows no rank touched stay out of a lazy update.
    """
    if not current().distributed:
        return
    by_rows = {id(p) for p in row_sparse}
    dense, rows = [], []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        (rows if p.grad.is_sparse or id(p) in by_rows else dense).append(p)
    if dense:
        flat = torch.cat([p.grad.reshape(-1) for p in dense])
        dist.all_reduce(flat)
        for p, g in zip(dense, flat.split([p.numel() for p in dense])):
            p.grad = g.view_as(p)
    for p in rows:
        p.grad = _sum_rows(p.grad)


def _sum_rows(grad: torch.Tensor) -> torch.Tensor:
    """A (V, D) gradient summed across ranks by exchanging only its non-zero rows; sparse if it came sparse."""
    sparse = grad.is_sparse
    local = (grad.coalesce() if sparse else grad.to_sparse(1))
    idx, val = local.indices()[0], local.values()  # (R,), (R, D)
    count = torch.tensor([len(idx)], device=_comm_device())
    counts = [torch.zeros_like(count) for _ in range(current().world)]
    dist.all_gather(counts, count)
    most = int(max(c.item() for c in counts))
    pad_idx = torch.zeros(most, dtype=idx.dtype, device=_comm_device())
    pad_val = torch.zeros((most, *val.shape[1:]), dtype=val.dtype, device=_comm_device())
    pad_idx[: len(idx)], pad_val[: len(idx)] = idx, val
    all_idx = [torch.empty_like(pad_idx) for _ in counts]
    all_val = [torch.empty_like(pad_val) for _ in counts]
    dist.all_gather(all_idx, pad_idx)
    dist.all_gather(all_val, pad_val)
    n = [int(c.item()) for c in counts]
    idx = torch.cat([i[:k] for i, k in zip(all_idx, n)]).to(grad.device)
    val = torch.cat([v[:k] for v, k in zip(all_val, n)]).to(grad.device)
    summed = torch.sparse_coo_tensor(idx.unsqueeze(0), val, grad.shape).coalesce()
    return summed if sparse else summed.to_dense()


def gather_rows(idx: np.ndarray, compute: Callable[[np.ndarray], np.ndarray], width: int) -> np.ndarray:
    """`compute(rows)` -> (len(rows), width) float32 for this rank's share of `idx`, gathered: the
    outputs of all of `idx`, in its order, on every rank."""
    rt = current()
    if not rt.distributed:
        return compute(idx)
    share = np.arange(len(idx))[rt.rank :: rt.world]
    most = -(-len(idx) // rt.world)
    mine = np.zeros((most, width), dtype=np.float32)
    mine[: len(share)] = compute(idx[share])
    parts = [torch.empty((most, width), dtype=torch.float32, device=_comm_device()) for _ in range(rt.world)]
    dist.all_gather(parts, torch.from_numpy(mine).to(_comm_device()))
    out = np.empty((len(idx), width), dtype=np.float32)
    for r, part in enumerate(parts):
        rows = np.arange(len(idx))[r :: rt.world]
        out[rows] = part.cpu().numpy()[: len(rows)]
    return out


def _comm_device() -> torch.device:
    """Where collectives' tensors must live: the GPU under NCCL, the CPU under gloo."""
    return current().device if current().device.type == "cuda" else torch.device("cpu")
