"""One place decides where work runs: the device, and the processes of a torchrun launch.

`setup("auto")` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE). Several
processes join one process group (gloo on CPU, NCCL on CUDA, chosen by the device) and share the work:
every rank takes a disjoint share of each global batch (`shard`), gradients are summed across ranks
(`sum_gradients`) so every step equals the one-process step on the whole batch, and labelling rows
are split and gathered (`gather_rows`). Dropout draws the same masks as one process would
(`shared_dropout`). Rank 0 alone writes files and prints; the other ranks' stdout and stderr go to
/dev/null (their errors still reach the terminal, naming the rank: harness/cli.py). One process
without torchrun is the same code with world 1, where every collective is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from harness.core.errors import HarnessError

# A rank waits this long at a collective for the others. Rank 0 alone augments the transfer set
# while the others wait, which takes over an hour for the paper's 1.35M SST-2 rows on 2 cores; a rank
# that dies does not make the others wait this long: torchrun stops the whole group.
TIMEOUT = datetime.timedelta(hours=6)


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


def shared_dropout(rows: int) -> contextlib.AbstractContextManager:
    """Inside it, this rank's dropout masks are its rows of the masks one process draws for the whole
    global batch of `rows` rows (a no-op in one process). Every rank's torch generator must start equal
    (seed them alike); they stay equal while each rank runs the forward of a non-empty share, and
    `sync_generator` mends them after every step in which some rank had none."""
    rt = current()
    return SharedDropout(rows, rt.rank, rt.world) if rt.distributed else contextlib.nullcontext()


def _dropout_args(input, p=0.5, training=True, inplace=False):  # noqa: A002 (F.dropout's names)
    return input, p, training, inplace


def _attention_args(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa


class SharedDropout(TorchFunctionMode):
    """Dropout under several processes, with the masks of one process.

    A rank holds rows `rank::world` of each global batch of `rows` rows (`shard`), padded to the global
    batch's length. Each dropout call draws the mask of the whole global batch from the torch generator,
    which every rank seeds alike, and keeps this rank's rows: so each row meets the mask it meets in one
    process, and the ranks' generators stay equal. The draw repeats one process's operations: F.dropout
    is `empty_like(x).bernoulli_(1 - p)` scaled by 1/(1 - p), and scaled-dot-product attention with
    dropout is its math kernel (the only CPU kernel that takes dropout), redone below op for op. With
    world 1 both equal the stock calls bit for bit (tests/test_distributed.py checks forward and
    gradients), so a two-process CPU run trains as one process does up to float sums. One process
    does not use the mode. On CUDA its stock calls are fused kernels whose masks come from another
    stream: runs over several GPUs match each other, not the one-GPU run, mask for mask. Other random
    operations (dropout2d, alpha dropout) are not shared; the students and transformers' encoders use none.
    """

    def __init__(self, rows: int, rank: int, world: int) -> None:
        super().__init__()
        self.rows, self.rank, self.world = rows, rank, world

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            x, p, training, inplace = _dropout_args(*args, **kwargs)
            if training and 0 < p < 1:
                return x.mul_(self.noise(x, p)) if inplace else x * self.noise(x, p)
        elif func is F.scaled_dot_product_attention:
            q, k, v, mask, p, causal, scale, gqa = _attention_args(*args, **kwargs)
            if p > 0:
                if causal or gqa:
                    raise HarnessError("attention dropout under several processes: causal or grouped-query "
                                       "attention is not supported (encoders only)")
                return self.attention(q, k, v, mask, p, scale)
        return func(*args, **kwargs)

    def noise(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """This rank's rows of the global batch's dropout mask, already scaled by 1/(1 - p)."""
        if x.shape[0] != len(range(self.rank, self.rows, self.world)):
            raise HarnessError(f"dropout on a tensor of shape {tuple(x.shape)} under several processes: its first "
                               f"dimension must be this rank's share of the {self.rows}-row batch")
        noise = torch.empty((self.rows, *x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(1 - p)
        return noise.div_(1 - p)[self.rank :: self.world]

    def attention(self, q, k, v, mask, p: float, scale: float | None) -> torch.Tensor:
        """torch's math kernel for scaled-dot-product attention, with this rank's dropout rows."""
        factor = math.sqrt(scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
        attn = torch.matmul(q * factor, k.transpose(-2, -1) * factor)
        if mask is not None:
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=attn.dtype, device=mask.device).masked_fill_(~mask, -math.inf)
            attn.add_(mask)
        attn = torch._safe_softmax(attn, -1)
        return torch.matmul(attn * self.noise(attn, p), v)


def sync_generator(rows: int) -> None:
    """After a training step over a global batch of `rows` rows: when some rank had no rows (fewer rows
    than ranks), it ran no forward and drew no masks, so every rank's torch generators (the CPU's and
    this rank's GPU's) are set to rank 0's. Otherwise (and in one process) nothing to do."""
    rt = current()
    if rows >= rt.world:
        return
    state = torch.get_rng_state().to(_comm_device())
    dist.broadcast(state, 0)
    torch.set_rng_state(state.cpu())
    if rt.device.type == "cuda":
        state = torch.cuda.get_rng_state(rt.device).to(rt.device)
        dist.broadcast(state, 0)
        torch.cuda.set_rng_state(state.cpu(), rt.device)


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
