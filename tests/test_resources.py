"""Memory limits: out-of-memory failures become one clear error; gradient accumulation keeps the gradients.

Running out of memory is simulated (a forward that raises what PyTorch raises), so these run on any
machine in seconds. Gradient accumulation is checked on the real training step with a tiny BERT: batch 8
in micro-batches of 2 must move every parameter exactly as one batch of 8 does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import biotune.runs
import biotune.training
from _slices import write_slice
from biotune.cli import main
from biotune.config import TrainConfig
from biotune.resources import (
    OutOfMemory,
    batch_dimensions,
    is_out_of_memory,
    next_accumulation,
    out_of_memory_guard,
)
from biotune.runs import build_context, resolve_config, run_training
from biotune.training import _optimizer_step, build_seed_model

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total capacity)"
CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"
)


class ExhaustedModel(nn.Module):
    """Stands in for a model whose forward pass runs out of memory."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise self.error


def one_pass(
    model: nn.Module, batch: dict[str, torch.Tensor], batch_size: int, accumulation: int = 1
) -> None:
    rows, length = batch_dimensions(batch)
    with out_of_memory_guard(rows, length, batch_size=batch_size, accumulation=accumulation):
        model(**batch).sum().backward()


def batch_of(rows: int, length: int) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.ones(rows, length, dtype=torch.long),
        "attention_mask": torch.ones(rows, length, dtype=torch.long),
    }


# --- recognising and explaining out-of-memory --------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError(CUDA_OOM),
        RuntimeError(CPU_OOM),
        RuntimeError("MPS backend out of memory (MPS allocated: 17.5 GB)"),
        MemoryError(),
    ],
    ids=["cuda", "cpu-allocator", "mps", "python-memoryerror"],
)
def test_each_shape_of_out_of_memory_becomes_one_clear_error(error: BaseException) -> None:
    with pytest.raises(OutOfMemory) as caught:
        one_pass(ExhaustedModel(error), batch_of(16, 128), batch_size=16)
    message = str(caught.value)
    assert message.startswith("batch 16 x length 128 did not fit in memory")
    assert "lower --batch-size or --max-length" in message
    assert (
        "--gradient-accumulation 2 (the effective batch stays 16; each pass then holds 8 examples)" in message
    )
    assert caught.value.__cause__ is error  # the original stays attached for --debug style inspection


def test_other_runtime_errors_pass_through_untouched() -> None:
    error = RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x32 and 64x2)")
    with pytest.raises(RuntimeError) as caught:
        one_pass(ExhaustedModel(error), batch_of(8, 32), batch_size=8)
    assert caught.value is error and not isinstance(caught.value, OutOfMemory)
    assert not is_out_of_memory(error) and not is_out_of_memory(ValueError("out of memory"))


def test_with_accumulation_already_on_the_micro_batch_is_named_and_the_next_divisor_suggested() -> None:
    with pytest.raises(OutOfMemory) as caught:
        one_pass(ExhaustedModel(RuntimeError(CPU_OOM)), batch_of(8, 512), batch_size=32, accumulation=4)
    message = str(caught.value)
    assert message.startswith("micro-batch 8 x length 512 (batch 32, accumulation 4) did not fit in memory")
    assert (
        "--gradient-accumulation 8 (the effective batch stays 32; each pass then holds 4 examples)" in message
    )


def test_batch_of_one_can_only_lower_the_length() -> None:
    with pytest.raises(OutOfMemory) as caught:
        one_pass(ExhaustedModel(torch.OutOfMemoryError(CUDA_OOM)), batch_of(1, 512), batch_size=1)
    assert "--gradient-accumulation" not in str(caught.value) and "--max-length" in str(caught.value)


def test_evaluation_batches_get_their_own_advice() -> None:
    with (
        pytest.raises(
            OutOfMemory, match=r"^an evaluation batch of 64 x length 256 did not fit.*--max-length"
        ),
        out_of_memory_guard(64, 256),
    ):
        raise torch.OutOfMemoryError(CUDA_OOM)


def test_next_accumulation_divides_the_batch() -> None:
    assert [next_accumulation(32, k) for k in (1, 2, 4, 8, 16, 32)] == [2, 4, 8, 16, 32, None]
    assert next_accumulation(12, 2) == 3 and next_accumulation(7, 1) == 7 and next_accumulation(1, 1) is None


def test_batch_dimensions_ignore_labels_and_take_the_widest_input() -> None:
    batch = {
        "input_ids": torch.zeros(4, 10),
        "input_ids_b": torch.zeros(4, 17),  # a second text of a pair, padded on its own
        "labels": torch.zeros(4, 99),
    }
    assert batch_dimensions(batch) == (4, 17)


def test_the_cli_prints_one_message_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def exhausted_training(
        config: TrainConfig, output_dir: Path, progress: bool = False, **_: object
    ) -> None:
        one_pass(ExhaustedModel(torch.OutOfMemoryError(CUDA_OOM)), batch_of(32, 512), batch_size=32)

    monkeypatch.setattr(biotune.runs, "run_training", exhausted_training)
    monkeypatch.setattr(sys, "argv", ["biotune", "train", "gad", "--output", "unused"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2
    assert "batch 32 x length 512 did not fit in memory" in err and "--gradient-accumulation 2" in err
    assert "Traceback" not in err


# --- through the training engine ----------------------------------------------------------------------


def _gad_config(shared_data: Path, tmp_path: Path, tiny_bert: Path, **extra: object) -> TrainConfig:
    task_type, files = write_slice(shared_data, "GAD", tmp_path / "data", 16)
    values: dict[str, object] = {
        "train_file": files["train"],
        "dev_file": files["dev"],
        "task_type": task_type,
        "model": str(tiny_bert),
        "seeds": [0],
        "epochs": 1,
        "batch_size": 8,
        "max_length": 32,
        "learning_rate": 1e-4,
        "dropout": 0.0,
        "save_model": False,
    }
    values.update(extra)
    return TrainConfig(**values)


def test_training_turns_out_of_memory_into_the_clear_error(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = biotune.training.build_model

    def build_exhausted(*args: object, **kwargs: object) -> nn.Module:
        model = real_build(*args, **kwargs)
        forward = model.forward

        def forward_or_fail(*f_args: object, **f_kwargs: object) -> object:
            if model.training:
                raise torch.OutOfMemoryError(CUDA_OOM)
            return forward(*f_args, **f_kwargs)

        model.forward = forward_or_fail
        return model

    monkeypatch.setattr(biotune.training, "build_model", build_exhausted)
    config = _gad_config(shared_data, tmp_path, tiny_bert, batch_size=8, gradient_accumulation=2)
    with pytest.raises(
        OutOfMemory, match=r"^micro-batch \d+ x length \d+ \(batch 8, accumulation 2\) did not fit"
    ):
        run_training(config, tmp_path / "run")


@pytest.mark.parametrize(("examples", "micro_batch"), [(8, 2), (7, 3)], ids=["8-in-4x2", "7-in-3+3+1"])
def test_gradient_accumulation_gives_the_gradients_of_the_whole_batch(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, examples: int, micro_batch: int
) -> None:
    """With SGD at lr 1 a parameter's update is its gradient, so this compares gradients directly.

    (Adam's first step is about lr * sign(gradient) and would hide a gradient off by any positive factor.)
    """
    ctx = build_context(resolve_config(_gad_config(shared_data, tmp_path, tiny_bert, batch_size=8)))
    pad_id = ctx.tokenizer.pad_token_id or 0
    indices = list(range(examples))

    def update(micro: int) -> torch.Tensor:
        model, _ = build_seed_model(ctx, seed=0)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        optimizer = torch.optim.SGD(params, lr=1.0)
        _optimizer_step(model, ctx, indices, micro, pad_id, 1e12, optimizer)
        return torch.cat([(b - p.detach()).flatten() for b, p in zip(before, params, strict=True)])

    whole, accumulated = update(examples), update(micro_batch)
    assert whole.abs().max() > 1e-4  # the step really moved the model
    torch.testing.assert_close(accumulated, whole, rtol=1e-5, atol=1e-6)
