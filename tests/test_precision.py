"""The device seam and precision: bf16 autocast with fp32 master weights, fp16 loss scaling, gradient
checkpointing, fp32 loading of fp16 checkpoints, run identity, and up-front refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForTokenClassification

from _slices import write_slice
from biotune.config import TrainConfig
from biotune.device import native_bf16, recipe_for, refuse_distributed, resolve_device, resolve_precision
from biotune.errors import ConfigError
from biotune.models import build_model, enable_gradient_checkpointing
from biotune.runs import build_context, resolve_config
from biotune.study.grid import run_id_of
from biotune.training import _optimizer_step, build_seed_model, train_seed


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ner-precision")
    _, files = write_slice(shared_data, "NCBI-disease", folder, 24)
    return files


def ner_context(files: dict[str, Path], model: Path, **options: object):  # noqa: ANN201
    values = {
        "train_file": files["train"],
        "dev_file": files["dev"],
        "task_type": "ner",
        "model": str(model),
        "seeds": [0],
        "epochs": 1,
        "batch_size": 8,
        "max_length": 64,
        "learning_rate": 1e-3,
        "save_model": False,
        "device": "cpu",
        **options,
    }
    return build_context(resolve_config(TrainConfig(**values)))


def one_step_gradients(ctx, max_grad_norm: float = 1e12) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:  # noqa: ANN001
    """Gradients of one optimizer step (SGD at lr 0 leaves the weights; the grads are read in a hook)."""
    model, _ = build_seed_model(ctx, seed=0)
    model.train()
    grads: dict[str, torch.Tensor] = {}
    params = dict(model.named_parameters())

    class Capture(torch.optim.SGD):
        def step(self, closure=None):  # noqa: ANN001, ANN202
            for name, p in params.items():
                if p.grad is not None:
                    grads[name] = p.grad.detach().clone()
            return super().step(closure)

    optimizer = Capture([p for p in params.values() if p.requires_grad], lr=0.0)
    _optimizer_step(model, ctx, list(range(8)), 8, ctx.pad_token_id, max_grad_norm, optimizer)
    return model, grads


def test_bf16_autocast_keeps_fp32_weights_and_matches_fp32_gradients(ner_files, tiny_bert: Path) -> None:  # noqa: ANN001
    fp32 = ner_context(ner_files, tiny_bert, dropout=0.0)
    bf16 = ner_context(ner_files, tiny_bert, dropout=0.0, precision="bf16")
    assert bf16.recipe.autocast_dtype is torch.bfloat16 and fp32.recipe.autocast_dtype is None
    _, reference = one_step_gradients(fp32)
    model, reduced = one_step_gradients(bf16)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert all(g.dtype == torch.float32 for g in reduced.values())
    assert reference.keys() == reduced.keys() and reference
    # bf16 keeps 8 bits of mantissa: the gradient agrees to a few percent of its scale, not to 1e-6
    for name, expected in reference.items():
        scale = expected.abs().max().item()
        if scale < 1e-8:
            continue
        error = (reduced[name] - expected).abs().max().item()
        assert error <= 0.05 * scale, f"{name}: {error} against scale {scale}"
    # and it is reduced precision indeed, not fp32 under another name
    assert any(not torch.equal(reference[n], reduced[n]) for n in reference)


def test_bf16_training_runs_end_to_end_and_is_reproducible(ner_files, tiny_bert: Path) -> None:  # noqa: ANN001
    ctx = ner_context(ner_files, tiny_bert, precision="bf16", epochs=2)
    first, second = train_seed(ctx, 0), train_seed(ctx, 0)
    assert not (first.error or "").startswith("diverged")
    assert [h["dev"] for h in first.history] == [h["dev"] for h in second.history]
    assert all(math.isfinite(h["train_loss"]) for h in first.history)


def test_fp16_scaler_skips_an_overflowing_step_without_a_divergence(ner_files, tiny_bert: Path) -> None:  # noqa: ANN001
    ctx = ner_context(ner_files, tiny_bert, precision="fp16", dropout=0.0)
    scaler = ctx.recipe.grad_scaler()
    assert scaler is not None and scaler.is_enabled()
    model, _ = build_seed_model(ctx, seed=0)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    target = model.classifier.weight
    handle = target.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    optimizer = torch.optim.SGD(params, lr=1.0)
    before = [p.detach().clone() for p in params]
    scale = scaler.get_scale()
    loss = _optimizer_step(model, ctx, list(range(8)), 8, ctx.pad_token_id, 1.0, optimizer, scaler=scaler)
    assert math.isfinite(loss)  # the loss itself is fine: no TrainingDiverged from the loop
    assert scaler.get_scale() == scale / 2  # the scale halved
    assert all(torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))  # step skipped
    handle.remove()
    loss = _optimizer_step(model, ctx, list(range(8)), 8, ctx.pad_token_id, 1.0, optimizer, scaler=scaler)
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))  # next one steps


def test_fp16_training_with_an_inf_gradient_is_not_failed(ner_files, tiny_bert: Path, monkeypatch) -> None:  # noqa: ANN001
    ctx = ner_context(ner_files, tiny_bert, precision="fp16", epochs=1)
    import biotune.training as training

    original = training.build_seed_model
    poisoned = {"done": False}

    def build_with_one_inf(ctx_, seed):  # noqa: ANN001, ANN202
        model, applied = original(ctx_, seed)

        def once(grad: torch.Tensor) -> torch.Tensor:
            if poisoned["done"]:
                return grad
            poisoned["done"] = True
            return torch.full_like(grad, float("inf"))

        model.classifier.weight.register_hook(once)
        return model, applied

    monkeypatch.setattr(training, "build_seed_model", build_with_one_inf)
    outcome = train_seed(ctx, 0)
    assert poisoned["done"]
    assert outcome.error is None or not outcome.error.startswith("diverged")


def test_gradient_checkpointing_gives_the_same_gradients_with_dropout_on(tiny_bert: Path) -> None:
    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model(str(tiny_bert), "token", ["B", "I", "O"], dropout=0.3)
        if checkpointing:
            enable_gradient_checkpointing(model)
        model.train()
        ids = torch.randint(5, 90, (4, 24), generator=torch.Generator().manual_seed(1))
        torch.manual_seed(7)  # the same dropout stream for both
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        logits.square().mean().backward()
        return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_checkpointing_is_applied_to_the_run_model(ner_files, tiny_bert: Path) -> None:  # noqa: ANN001
    ctx = ner_context(ner_files, tiny_bert, gradient_checkpointing=True)
    model, _ = build_seed_model(ctx, 0)
    assert getattr(model, "is_activation_checkpointing", False)
    outcome = train_seed(ctx, 0)
    assert outcome.history and math.isfinite(outcome.history[-1]["train_loss"])


def test_a_model_saved_in_fp16_loads_with_fp32_master_weights(tiny_bert: Path, tmp_path: Path) -> None:
    half = AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3, dtype=torch.float16)
    assert next(half.parameters()).dtype == torch.float16
    half.save_pretrained(tmp_path / "fp16")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(tmp_path / "fp16")
    # the checkpoint's config says float16; biotune's loaders pass the dtype explicitly
    for head, pooling, pair in (
        ("token", "cls", "cross"),
        ("sequence", "mean", "cross"),
        ("regression", "mean", "siamese"),
    ):
        model = build_model(
            str(tmp_path / "fp16"), head, ["a", "b", "c"], pooling=pooling, pair_encoding=pair
        )
        assert {p.dtype for p in model.parameters()} == {torch.float32}, (head, pooling, pair)


def test_a_precision_change_gives_a_different_run_id() -> None:
    base = TrainConfig(dataset="BIOSSES", seeds=[0])
    ids = {
        p: run_id_of(base.model_copy(update={"precision": p}), "standard") for p in ("fp32", "bf16", "fp16")
    }
    assert len(set(ids.values())) == 3
    # fp32 is the default: ids recorded before precision existed are unchanged
    assert ids["fp32"] == run_id_of(base, "standard")
    # auto counts as what it resolves to on this machine
    auto = run_id_of(base.model_copy(update={"precision": "auto", "device": "cpu"}), "standard")
    assert auto == ids["bf16" if native_bf16(torch.device("cpu")) else "fp32"]


def test_precision_and_device_are_checked_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    with pytest.raises(ConfigError, match="tf32 is a CUDA"):
        resolve_precision("tf32", cpu)
    with pytest.raises(ConfigError, match="not a device name|not supported"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="--runner ray"):
        refuse_distributed()
    monkeypatch.setenv("WORLD_SIZE", "1")
    refuse_distributed()


def test_the_recipe_is_decided_once_and_recorded(ner_files, tiny_bert: Path) -> None:  # noqa: ANN001
    recipe = recipe_for("cpu", "bf16")
    assert (recipe.fused_adamw, recipe.compact_embedding_rows, recipe.cpu_dropout) == (True, True, True)
    described = recipe.describe()
    assert described["device"] == "cpu" and described["precision"] == "bf16"
    ctx = ner_context(ner_files, tiny_bert, precision="auto")
    assert ctx.config.precision == ctx.recipe.precision != "auto"  # config.yaml says what ran
