"""Data-parallel training of one model over several processes: the plumbing behind ``--devices N``.

Processes. `launch` starts N worker processes on this machine with torchrun's environment (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT a free port);
``torchrun --nproc_per_node N -m gnocchi_core.cli train ...`` sets the same variables itself. In
each, `session` joins the process group: NCCL when every rank has its own CUDA device (rank →
cuda:LOCAL_RANK), gloo on the CPU, where each rank runs max(1, CPUs // N) torch threads unless
OMP_NUM_THREADS says otherwise (torchrun sets it to 1). One machine only: rank 0 writes the model
folder and the others read its checkpoints from the same disk.

Failures. Collectives time out after `TIMEOUT_S` (``GNOCCHI_DIST_TIMEOUT`` seconds); a rank that
dies closes its sockets, so the others fail at their next collective rather than wait. The launcher
then stops every rank and raises the first failing rank's error as one line. Ctrl-C: ranks other
than 0 ignore SIGINT, so rank 0 alone is interrupted; it finishes the folder with the best weights
so far, as one process does, while the others end at their next collective.

Training (`World`, used by `training.Trainer`). Every rank draws the same shuffled batches, in the
same order as one device (the shuffling generator is seeded alike on every rank), and trains on its
contiguous share of each one; a loss that is a mean over the batch is weighted by shard size / batch
size, and the gradients are summed over the ranks (one all-reduce a step), so the update is the
one-device update on the whole batch up to floating-point rounding. A rank whose share of a short
last batch is empty runs one trial at weight 0, so every rank runs the same steps. Validation, EMA,
early stopping and the time budget see rank 0's numbers and decision (broadcast); only rank 0
writes files. What is *not* the same as one device: random draws inside the model (dropout,
coordinated dropout, posterior samples, diffusion noise and steps) are drawn per shard, from a
stream of each rank's own, so a stochastic config trains to the same loss curve only statistically;
and losses that are statistics of the whole batch rather than means over trials (GNOCCHI's MMD
prior term, its autoencoder's variance-normalised smoothness) are computed within each shard.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from tqdm.std import tqdm

from ..errors import GnocchiError, one_line

TIMEOUT_S = float(os.environ.get("GNOCCHI_DIST_TIMEOUT", 600))
GRACE_S = 30.0  # how long rank 0 may take to finish on its own once another rank has failed


# ---------------------------------------------------------------------- where this process stands
def active() -> bool:
    """Whether this process is one rank of several in a joined process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0, the one that writes files and prints (always true for one process)."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def env_world_size() -> int | None:
    """WORLD_SIZE when this process was started as a rank (by torchrun or `launch`), else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        return int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise GnocchiError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes") from None


def requested_world(devices: int | None) -> tuple[int, bool]:
    """(processes, whether this process must start them) for ``--devices`` (None: not given).

    Under torchrun the environment names the world; ``--devices`` may then only repeat it."""
    started = env_world_size()
    if started is not None:
        if devices is not None and devices != started:
            raise GnocchiError(f"--devices {devices} does not match this torchrun world of {started} processes "
                               "(WORLD_SIZE); omit --devices under torchrun")
        return started, False
    devices = 1 if devices is None else devices
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise GnocchiError(f"--devices must be a whole number of processes ≥ 1, got {devices!r}")
    return devices, devices > 1


def check_device(device: str, world_size: int) -> str:
    """The kind of device N ranks train on, "cpu" or "cuda" (rank r on cuda:r), from ``--device``."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    if local != world_size:
        raise GnocchiError(f"training across machines is not supported ({world_size} processes, {local} on this "
                           "one): run all ranks on one machine")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        if gpus == 0:
            return "cpu"
        device = "cuda"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if gpus < world_size:
            raise GnocchiError(f"--devices {world_size} with --device {device} needs {world_size} CUDA devices, one "
                               f"per process; this machine has {gpus} (--device cpu trains {world_size} CPU "
                               "processes)")
        return "cuda"
    raise GnocchiError(f"--device {device!r} with --devices {world_size}: use cuda (rank r trains on cuda:r), cpu "
                       "or auto")


def threads_per_rank(local_world: int) -> int:
    """Torch threads for one of ``local_world`` CPU ranks: OMP_NUM_THREADS when set, else an equal share."""
    told = os.environ.get("OMP_NUM_THREADS", "")
    if told.isdigit() and int(told) > 0:
        return int(told)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // local_world)


@contextlib.contextmanager
def session(device: str = "cpu", timeout_s: float = TIMEOUT_S) -> Iterator[str]:
    """Join the process group the environment names, for the block; yields this rank's device
    ("cpu" or "cuda:LOCAL_RANK"; ``device`` itself when there is one process, or the group is
    already joined, which makes nested sessions free)."""
    size = env_world_size()
    if size is None or size == 1:
        yield device
        return
    kind = check_device(device, size)
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    here = "cpu" if kind == "cpu" else f"cuda:{local_rank}"
    if dist.is_initialized():
        yield here
        return
    if int(os.environ["RANK"]) != 0 and _main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: rank 0 finishes the folder (see module doc)
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
    else:
        torch.set_num_threads(threads_per_rank(int(os.environ.get("LOCAL_WORLD_SIZE", size))))
    dist.init_process_group("nccl" if kind == "cuda" else "gloo", init_method="env://",
                            timeout=timedelta(seconds=timeout_s))
    yield here  # not left on an error: the process ends, and a collective that failed may not return
    dist.destroy_process_group()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------------- what the trainer does with it
class World:
    """This process's part in data-parallel training; every method is a no-op for one process."""

    def __init__(self):
        self.size = dist.get_world_size() if active() else 1
        self.rank = dist.get_rank() if active() else 0
        self.is_main = self.rank == 0

    def shard(self, rows: torch.Tensor) -> tuple[torch.Tensor, int, float | None]:
        """This rank's contiguous share of a batch's row indices: (rows, how many count, their share
        of the batch, None for one process). An empty share is one row at weight 0."""
        if self.size == 1:
            return rows, len(rows), None
        mine = rows.tensor_split(self.size)[self.rank]
        if len(mine) == 0:
            return rows[:1], 0, 0.0
        return mine, len(mine), len(mine) / len(rows)

    def sum_gradients(self, module: nn.Module) -> None:
        """Sum every parameter's gradient over the ranks, in one all-reduce per dtype. A gradient
        that is None on every rank stays None (as one device leaves an unused parameter)."""
        if self.size == 1:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        for dtype in dict.fromkeys(p.dtype for p in params):
            group = [p for p in params if p.dtype == dtype]
            present = torch.tensor([float(p.grad is not None) for p in group], dtype=dtype, device=group[0].device)
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group]
                             + [present])
            dist.all_reduce(flat)
            offset = 0
            for p, used in zip(group, flat[-len(group):].tolist()):
                p.grad = flat[offset:offset + p.numel()].view_as(p) if used else None
                offset += p.numel()

    def sum_values(self, sums: dict[str, float], device: torch.device) -> dict[str, float]:
        """Per-rank sums of logged values, summed over the ranks (every rank logs the same keys)."""
        if self.size == 1 or not sums:
            return sums
        keys = sorted(sums)
        total = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return dict(zip(keys, total.tolist()))

    def from_main(self, value):
        """Rank 0's ``value`` (any picklable object), on every rank."""
        if self.size == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers."""
        if self.size == 1:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    # -------------------------------------------------------------- random streams
    def decorrelate_rng(self) -> None:
        """Give ranks > 0 streams of model noise of their own (rank 0 keeps one device's), so the
        shards of a batch do not share dropout masks or diffusion noise."""
        if self.size > 1 and not self.is_main:
            derived = int(torch.randint(0, 2**62, (1,)))  # the same draw on every rank: add the rank
            torch.manual_seed(derived + self.rank)

    def rng_states(self) -> dict:
        """Every rank's torch RNG state, for a checkpoint (a collective: call it on every rank)."""
        if self.size == 1:
            return {}
        states = {"rank_torch_rng": self._gathered(torch.get_rng_state())}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["rank_cuda_rng"] = self._gathered(torch.cuda.get_rng_state())
        return states

    def restore_rng(self, state: dict) -> None:
        """After the checkpoint's (rank 0's) RNG state is set: a run of as many ranks continues each
        rank's own stream exactly; with another number of ranks, ranks > 0 derive new ones."""
        ranks = state.get("rank_torch_rng")
        if self.size == 1:
            return
        if isinstance(ranks, list) and len(ranks) == self.size:
            torch.set_rng_state(ranks[self.rank].cpu())
            cuda = state.get("rank_cuda_rng")
            if isinstance(cuda, list) and len(cuda) == self.size and torch.cuda.is_available():
                torch.cuda.set_rng_state(cuda[self.rank].cpu())
        else:
            self.decorrelate_rng()

    def _gathered(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        out: list = [None] * self.size
        dist.all_gather_object(out, tensor.cpu())
        return out


# ---------------------------------------------------------------------- the launcher
def launch(fn: Callable, args: tuple = (), world_size: int = 2, device: str = "cpu",
           timeout_s: float = TIMEOUT_S) -> None:
    """Run ``fn(*args)`` in ``world_size`` new processes, each a rank in a `session` on ``device``
    (cpu or cuda), and wait for them all. ``fn`` and ``args`` must pickle (``fn`` a module-level
    function). A failing rank stops them all; its error is raised here as a one-line GnocchiError
    (KeyboardInterrupt when rank 0 was interrupted)."""
    kind = check_device(device, world_size)
    port = free_port()
    reports = Path(tempfile.mkdtemp(prefix="gnocchi-ranks-"))
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, name=f"gnocchi-rank-{r}",
                                 args=(r, world_size, port, kind, timeout_s, str(reports), fn, args))
                 for r in range(world_size)]
    try:
        for process in processes:
            process.start()
        try:
            _wait(processes)
        except KeyboardInterrupt:  # rank 0 was interrupted too: let it finish the folder, then stop the rest
            _stop(processes, grace_s=GRACE_S)
            raise
        _raise_failure(processes, reports)
    finally:
        _stop(processes, grace_s=0)
        shutil.rmtree(reports, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank_: int, world_size: int, port: int, device: str, timeout_s: float, reports: str,
            fn: Callable, args: tuple) -> None:
    os.environ.update(RANK=str(rank_), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank_),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # progress bars draw in rank 0 alone: a thread lock does, where tqdm's default (a process-shared
    # semaphore) would be reported leaked when a failing rank ends with os._exit
    tqdm.set_lock(threading.RLock())
    status, message, failed_at, trace = 0, None, None, None
    try:
        with session(device, timeout_s):
            try:
                fn(*args)
            except BaseException:
                failed_at = time.time()  # before the group is left: the first failure is the earliest
                raise
    except KeyboardInterrupt:
        status, message = 130, None
    except SystemExit as err:
        status = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        message = None if status == 0 else f"exited with status {status}"
    except (GnocchiError, ValueError, OSError) as err:  # what the CLI reports as a user error: no traceback
        status, message = 2, one_line(err)
    except BaseException as err:  # a bug, or another rank gone first: the launcher shows the first one's traceback
        status, message, trace = 1, f"{type(err).__name__}: {one_line(err)}", traceback.format_exc()
    if status:
        report = {"time": failed_at or time.time(), "status": status, "message": message, "traceback": trace}
        (Path(reports) / f"rank{rank_}.json").write_text(json.dumps(report))
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(status)  # not sys.exit: no waiting on whatever a failed collective left behind


def _wait(processes) -> None:
    """Until every rank has ended; once one fails, stop the others (rank 0 gets `GRACE_S` to end itself)."""
    while any(p.is_alive() for p in processes):
        multiprocessing.connection.wait([p.sentinel for p in processes if p.is_alive()], timeout=1.0)
        if any(p.exitcode not in (None, 0) for p in processes):
            _stop(processes[1:], grace_s=2.0)
            _stop(processes, grace_s=GRACE_S)
            return


def _stop(processes, grace_s: float) -> None:
    """Wait up to ``grace_s`` for the processes to end, then terminate (and if need be kill) the rest."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        if process.pid is not None:
            process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.pid is not None and process.is_alive():
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


def _raise_failure(processes, reports: Path) -> None:
    """The first failing rank's error as a GnocchiError (KeyboardInterrupt if rank 0 was interrupted)."""
    failed = {r: p.exitcode for r, p in enumerate(processes) if p.exitcode not in (None, 0)}
    if not failed:
        return
    found = {}
    for r in failed:
        path = reports / f"rank{r}.json"
        if path.is_file():
            found[r] = json.loads(path.read_text())
    if found.get(0, {}).get("status") == 130:
        raise KeyboardInterrupt
    explained = sorted((report["time"], r) for r, report in found.items() if report.get("message"))
    if explained:
        first = explained[0][1]
        if found[first].get("traceback"):
            print(f"rank {first}: {found[first]['traceback']}", file=sys.stderr, end="")
        raise GnocchiError(f"rank {first} of {len(processes)}: {found[first]['message']}")
    first = min(failed)
    code = failed[first]
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    raise GnocchiError(f"rank {first} of {len(processes)} {how}")
