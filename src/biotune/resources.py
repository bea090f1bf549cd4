"""Memory limits: an out-of-memory failure in a forward or backward pass becomes one clear error.

PyTorch reports running out of memory in several shapes: `torch.OutOfMemoryError` on CUDA, a plain
RuntimeError naming `DefaultCPUAllocator: can't allocate memory` on the CPU, "MPS backend out of memory"
on Apple GPUs, or Python's own MemoryError. Each becomes `OutOfMemory`, which says which batch did not
fit and what to change: a smaller batch or max length, or gradient accumulation, which splits every
optimizer step into micro-batches while the effective batch (the one the optimizer sees) stays the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from biotune.errors import BiotuneError

_TORCH_OOM: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
OUT_OF_MEMORY_MARKERS = (
    "out of memory",
    "defaultcpuallocator: can't allocate",
    "can't allocate memory",
    "failed to allocate memory",
)


class OutOfMemory(BiotuneError):
    """A batch did not fit in (GPU or CPU) memory; the message says which settings to lower."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, _TORCH_OOM | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OUT_OF_MEMORY_MARKERS)


def batch_dimensions(batch: Mapping[str, Any]) -> tuple[int, int]:
    """(rows, padded length) of a model-input batch: the widest 2-D tensor other than the labels."""
    rows, length = 0, 0
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and key != "labels":
            rows, length = max(rows, value.shape[0]), max(length, value.shape[1])
    return rows, length


def next_accumulation(batch_size: int, accumulation: int) -> int | None:
    """The smallest gradient-accumulation count above `accumulation` that divides the batch evenly."""
    return next((k for k in range(accumulation + 1, batch_size + 1) if batch_size % k == 0), None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def out_of_memory_message(
    rows: int, length: int, batch_size: int | None, accumulation: int, cause: BaseException
) -> str:
    """What did not fit, and what to change. `batch_size` None: an evaluation batch (no optimizer step)."""
    if batch_size is None:
        return (
            f"an evaluation batch of {rows} x length {length} did not fit in memory ({_first_line(cause)}); "
            "lower --max-length, or run on a device with more memory"
        )
    what = f"batch {rows} x length {length}"
    if accumulation > 1:
        what = f"micro-batch {rows} x length {length} (batch {batch_size}, accumulation {accumulation})"
    advice = ["lower --batch-size or --max-length"]
    larger = next_accumulation(batch_size, accumulation)
    if larger is not None:
        advice.append(
            f"or use --gradient-accumulation {larger} (the effective batch stays {batch_size}; each pass "
            f"then holds {batch_size // larger} examples)"
        )
    advice.append("or --gradient-checkpointing or --precision bf16 (less memory per example)")
    return f"{what} did not fit in memory ({_first_line(cause)}); " + ", ".join(advice)


class PeakMemory:
    """Peak memory of one seed: the process's resident set (Linux resets its high-water mark on request;
    elsewhere the peak is the process's so far, and `scope` says so), and CUDA's allocator peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.scope = "process"

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5", encoding="ascii")  # 5: reset the peak RSS
            self.scope = "seed"
        except OSError:
            self.scope = "process"
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def record(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"peak_rss_mb": round(peak_rss_bytes() / 2**20, 1), "rss_scope": self.scope}
        if self.device.type == "cuda":
            figures["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return figures


def peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _release_cached_memory() -> None:
    # the failed pass's activations are garbage now; hand them back so the message, a later seed or the
    # user's next command in the same process do not fail too
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def out_of_memory_guard(
    rows: int, length: int, *, batch_size: int | None = None, accumulation: int = 1
) -> Iterator[None]:
    """Wrap one forward (and backward) pass: running out of memory inside becomes `OutOfMemory`.

    `rows` x `length` is the batch passed to the model; `batch_size` and `accumulation` are the run's
    settings (leave `batch_size` out for evaluation). Any other error passes through untouched.
    """
    try:
        yield
    except (_TORCH_OOM, MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        _release_cached_memory()
        raise OutOfMemory(out_of_memory_message(rows, length, batch_size, accumulation, exc)) from exc
