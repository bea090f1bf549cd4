"""How this device trains and evaluates, decided once per run in one place (nanoGPT's `ctx` / `use_fused`).

A `DeviceRecipe` holds every choice that depends on the hardware: which device, which precision (autocast
dtype, loss scaling), the fused AdamW kernel, the compact embedding rows (`TrainedRows`), the cheaper CPU
dropout masks, gradient clipping without a host sync, and the evaluation batch budget. The training engine
and inference read the recipe; none of them checks the device type itself. A GPU path or a new precision is
an addition here, not an edit inside the training step.

Precision:
  fp32  full precision everywhere (the reference arithmetic).
  bf16  autocast to bfloat16 around the forward pass; the loss is computed in fp32 from fp32 logits and the
        master weights stay fp32. On a CPU with avx512_bf16 (or AMX) the matmuls run at about twice the fp32
        rate (see benchmarks/throughput.py).
  fp16  the same with float16, plus `torch.amp.GradScaler`: gradients are unscaled before clipping, and a
        step the scaler skips (inf/nan gradient) is a skipped step, not a divergence.
  tf32  CUDA only: fp32 weights and activations, TensorFloat-32 matmuls.
  auto  bf16 where the device computes it natively (CUDA with bf16 support; a CPU with avx512_bf16 or AMX),
        else fp32.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from biotune.errors import ConfigError

Precision = Literal["auto", "fp32", "bf16", "fp16", "tf32"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "tf32")

# Positions per evaluation batch at most. On a CPU a forward pass is no faster per token beyond a few
# hundred positions (MiniLM-L6, measured from 128 to 4096), and smaller batches let lengths match closely;
# a GPU needs far larger batches to fill.
CPU_EVAL_TOKENS_PER_BATCH = 4096
GPU_EVAL_TOKENS_PER_BATCH = 65536

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def refuse_distributed() -> None:
    """biotune runs one process per run; torchrun's data parallelism would train the same seed N times."""
    if int(os.environ.get("WORLD_SIZE", "1") or "1") > 1:
        raise ConfigError(
            "WORLD_SIZE > 1: biotune does not train one run across several processes (torchrun). "
            "To use several GPUs, run a study with --runner ray: one run per GPU"
        )


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA if visible, else CPU), `cpu`, `cuda`, `cuda:N` (checked against the visible GPUs)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a device name: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is visible; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {name!r} asked for, but only {count} GPU(s) are visible (cuda:0 to cuda:{count - 1})"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bfloat16 matmuls in hardware."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, check)()) for check in checks if hasattr(cpu, check))


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` to what this device runs; an impossible combination is an error before any work."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "tf32" and device.type != "cuda":
        raise ConfigError("precision tf32 is a CUDA matmul mode; on a CPU use bf16 or fp32")
    return precision


@dataclass(frozen=True)
class DeviceRecipe:
    """How one run uses its device; built once by `recipe_for` and read by training and inference."""

    device: torch.device
    precision: str  # resolved: fp32, bf16, fp16 or tf32
    fused_adamw: bool
    compact_embedding_rows: bool
    cpu_dropout: bool
    clip_without_unit_multiply: bool
    eval_tokens_per_batch: int

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST_DTYPES.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's precision context (a no-op for fp32 and tf32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """Loss scaling, for fp16 only (bf16 has fp32's exponent range)."""
        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    @contextlib.contextmanager
    def matmul_mode(self) -> Iterator[None]:
        """TF32 matmuls for the duration of a run (tf32 only); the previous mode is restored after."""
        if self.precision != "tf32":
            yield
            return
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(previous)

    def describe(self) -> dict[str, Any]:
        """What results.json records about where and how a run computed."""
        info: dict[str, Any] = {
            "device": str(self.device),
            "precision": self.precision,
            "threads": torch.get_num_threads(),
        }
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            info["name"] = torch.cuda.get_device_name(index)
            info["cuda"] = torch.version.cuda
        else:
            info["name"] = platform.processor() or platform.machine()
            info["native_bf16"] = native_bf16(self.device)
        return info


def inference_recipe(device_name: str = "auto", precision: str = "fp32") -> DeviceRecipe:
    """The recipe a saved model predicts with: the precision it was trained in, where this device can run
    it (a tf32-trained model predicts in fp32 on a CPU)."""
    device = resolve_device(device_name)
    if precision == "tf32" and device.type != "cuda":
        precision = "fp32"
    return recipe_for(str(device), precision)


def recipe_for(device_name: str = "auto", precision: str = "fp32") -> DeviceRecipe:
    """The one place where the hardware decides: every CPU-only trick and every precision choice."""
    device = resolve_device(device_name)
    resolved = resolve_precision(precision, device)
    on_cpu = device.type == "cpu"
    return DeviceRecipe(
        device=device,
        precision=resolved,
        # one pass over each tensor instead of a dozen: about 40% less optimizer time on a CPU (MiniLM-L6,
        # one thread: 77 ms a step instead of 124); on CUDA the foreach kernel is the default already
        fused_adamw=on_cpu,
        # a 30k-token vocabulary is half of a small encoder's parameters: on a CPU, optimize only the rows
        # the training data reaches (see training.TrainedRows)
        compact_embedding_rows=on_cpu,
        # torch's CPU bernoulli_ is single-threaded; on a GPU torch's own kernels are the fast ones
        cpu_dropout=on_cpu,
        # skipping clip's multiply by 1 needs the norm on the host: a sync on CUDA, free on a CPU
        clip_without_unit_multiply=on_cpu,
        eval_tokens_per_batch=CPU_EVAL_TOKENS_PER_BATCH if on_cpu else GPU_EVAL_TOKENS_PER_BATCH,
    )
