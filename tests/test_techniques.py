"""Stability techniques on tiny random BERT/ELECTRA/RoBERTa/DeBERTa-v2 models (no download)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch import nn
from transformers import (
    AutoModel,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
)

from _slices import slice_config
from biotune.config import TrainConfig
from biotune.errors import ConfigError
from biotune.runs import run_training
from biotune.techniques import (
    AdamWNoBiasCorrection,
    TechniquePlan,
    apply_techniques,
    attach_pretrained_decay,
    build_param_groups,
    find_layout,
    freeze_lower_layers,
    layer_lr_scales,
    make_optimizer,
    mixout,
    mixout_targets,
    mixout_weight,
    parse_techniques,
    reinit_top_layers,
    validate_plan,
)

LAYERS = 4
HEAD = LAYERS + 2
SIZES = dict(
    hidden_size=32,
    num_hidden_layers=LAYERS,
    num_attention_heads=2,
    intermediate_size=37,
    vocab_size=100,
    max_position_embeddings=64,
)
# DeBERTa-v3 style: relative attention brings encoder.rel_embeddings and encoder.LayerNorm.
DEBERTA_V3 = dict(
    relative_attention=True,
    pos_att_type=["p2c", "c2p"],
    max_relative_positions=-1,
    position_buckets=16,
    norm_rel_ebd="layer_norm",
    share_att_key=True,
    position_biased_input=False,
)

# name: (builder, base prefix, pooler prefix, embedding prefixes)
CASES: dict[str, tuple[Callable[[], PreTrainedModel], str, str | None, tuple[str, ...]]] = {
    "bert-seq": (
        lambda: BertForSequenceClassification(BertConfig(**SIZES)),
        "bert",
        "bert.pooler",
        ("bert.embeddings",),
    ),
    "bert-tok": (lambda: BertForTokenClassification(BertConfig(**SIZES)), "bert", None, ("bert.embeddings",)),
    # embedding_size != hidden_size gives ELECTRA's embeddings_project (as in ELECTRA-small).
    "electra-seq": (
        lambda: ElectraForSequenceClassification(ElectraConfig(**SIZES, embedding_size=16)),
        "electra",
        None,
        ("electra.embeddings", "electra.embeddings_project"),
    ),
    "electra-tok": (
        lambda: ElectraForTokenClassification(ElectraConfig(**SIZES, embedding_size=16)),
        "electra",
        None,
        ("electra.embeddings", "electra.embeddings_project"),
    ),
    "roberta-seq": (
        lambda: RobertaForSequenceClassification(RobertaConfig(**SIZES)),
        "roberta",
        None,
        ("roberta.embeddings",),
    ),
    "roberta-tok": (
        lambda: RobertaForTokenClassification(RobertaConfig(**SIZES)),
        "roberta",
        None,
        ("roberta.embeddings",),
    ),
    "deberta-seq": (
        lambda: DebertaV2ForSequenceClassification(DebertaV2Config(**SIZES, **DEBERTA_V3)),
        "deberta",
        None,
        ("deberta.embeddings", "deberta.encoder.rel_embeddings", "deberta.encoder.LayerNorm"),
    ),
    "deberta-tok": (
        lambda: DebertaV2ForTokenClassification(DebertaV2Config(**SIZES, **DEBERTA_V3)),
        "deberta",
        None,
        ("deberta.embeddings", "deberta.encoder.rel_embeddings", "deberta.encoder.LayerNorm"),
    ),
}


def build(case: str) -> PreTrainedModel:
    torch.manual_seed(0)
    return CASES[case][0]()


def expected_depth(case: str, name: str) -> int:
    """Oracle written from the HF module names, independent of the structural search under test."""
    base = CASES[case][1]
    layer = re.match(rf"{base}\.encoder\.layer\.(\d+)\.", name)
    if layer:
        return int(layer.group(1)) + 1
    if name.startswith(f"{base}.pooler."):
        return LAYERS + 1
    if name.startswith(f"{base}."):
        return 0
    return HEAD


def expected_no_decay(name: str) -> bool:
    return name.endswith(".bias") or name.endswith("LayerNorm.weight")


@torch.no_grad()
def pretend_pretrained(model: nn.Module) -> dict[str, torch.Tensor]:
    """Fill every parameter with noise (so re-init to 1/0 is visible) and snapshot it."""
    generator = torch.Generator().manual_seed(123)
    for parameter in model.parameters():
        parameter.copy_(torch.rand(parameter.shape, generator=generator) * 2 - 1)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# ---------------------------------------------------------------- parsing


def test_parse_reads_every_technique_case_insensitively() -> None:
    plan = parse_techniques(
        [" Freeze:4", "LLRD:0.90", "reinit:1", "No-Bias-Correction", "warmup:0", "longer:2.5", "early-stop:3"]
    )
    assert plan == TechniquePlan(
        freeze_layers=4,
        llrd_decay=0.9,
        reinit_layers=1,
        bias_correction=False,
        warmup_ratio=0.0,
        epoch_factor=2.5,
        patience=3,
    )
    assert plan.label == "freeze:4+llrd:0.9+reinit:1+no-bias-correction+warmup:0+longer:2.5+early-stop:3"


def test_standard_and_empty_are_the_plain_plan() -> None:
    assert parse_techniques([]) == parse_techniques(["standard"]) == TechniquePlan()
    assert TechniquePlan().label == "standard"
    assert TechniquePlan().as_list() == []
    assert parse_techniques(["reinit:1", "freeze:4"]).label == "freeze:4+reinit:1"


@pytest.mark.parametrize(
    ("specs", "says"),
    [
        (["freez:3"], "Did you mean freeze:K"),
        (["dropout:0.1"], "Write one of: standard, freeze:K"),
        (["freeze"], "write freeze:K"),
        (["freeze:"], "write freeze:K"),
        (["freeze:-1"], "at least 0"),
        (["freeze:1.5"], "whole number"),
        (["reinit:0"], "at least 1"),
        (["llrd:0"], "0 < D <= 1"),
        (["llrd:1.2"], "0 < D <= 1"),
        (["llrd:x"], "takes a number"),
        (["warmup:1"], "0 <= R < 1"),
        (["warmup:nan"], "0 <= R < 1"),
        (["longer:1"], "F > 1"),
        (["early-stop:0"], "at least 1"),
        (["no-bias-correction:yes"], "takes no value"),
        (["freeze:2", "FREEZE:3"], "given twice"),
        (["standard", "standard"], "given twice"),
        (["standard", "llrd:0.9"], "drop it, or drop ['llrd:0.9']"),
        (["freeze:4+reinit:1"], "['freeze:4', 'reinit:1']"),
        (["mixout:1"], "0 <= P < 1"),
        (["mixout"], "write mixout:P"),
        (["mixot:0.1"], "Did you mean mixout:P"),
        (["pretrained-decay:-0.1"], "L >= 0"),
        (["pretrained-decay:inf"], "L >= 0"),
        (["pretrained_decay:0.1"], "Did you mean pretrained-decay:L"),
    ],
)
def test_parse_errors_say_what_to_write(specs: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_techniques(specs)


def test_config_rejects_bad_techniques_through_parse() -> None:
    with pytest.raises(ValidationError, match="Did you mean llrd:D"):
        TrainConfig(techniques=["lrd:0.9"])
    assert TrainConfig(techniques=["freeze:2", "reinit:1"]).techniques == ["freeze:2", "reinit:1"]


plans = st.builds(
    TechniquePlan,
    freeze_layers=st.none() | st.integers(0, 48),
    llrd_decay=st.none() | st.floats(0, 1, exclude_min=True),
    reinit_layers=st.none() | st.integers(1, 48),
    mixout_probability=st.none() | st.floats(0, 1, exclude_max=True),
    pretrained_decay=st.none() | st.floats(0, 1e3),
    bias_correction=st.booleans(),
    warmup_ratio=st.none() | st.floats(0, 1, exclude_max=True),
    epoch_factor=st.none() | st.floats(1, 100, exclude_min=True),
    patience=st.none() | st.integers(1, 50),
)


@settings(max_examples=60, deadline=None)
@given(plans)
def test_canonical_specs_parse_back_to_the_same_plan(plan: TechniquePlan) -> None:
    assert parse_techniques(plan.as_list()) == plan
    assert parse_techniques(plan.label.split("+") if not plan.is_standard else ["standard"]) == plan


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("case", CASES)
def test_layout_is_found_from_structure(case: str) -> None:
    model = build(case)
    _, base, pooler, embeddings = CASES[case]
    layout = find_layout(model)
    assert layout.num_layers == LAYERS
    assert layout.base_prefix == base
    assert layout.pooler_prefix == pooler
    assert layout.embedding_prefixes == embeddings
    assert layout.layer_prefixes == tuple(f"{base}.encoder.layer.{i}" for i in range(LAYERS))
    for name, _ in model.named_parameters():
        assert layout.depth_of(name) == expected_depth(case, name), name


class ToyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(8, 8)
        self.norm = nn.RMSNorm(8)
        self.buckets = nn.Embedding(5, 8, padding_idx=0)
        self.gate = nn.Parameter(torch.full((8,), 3.0))  # not Linear/Embedding/norm: re-init leaves it


class ToyBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(20, 8)
        self.blocks = nn.ModuleList(ToyBlock() for _ in range(3))
        self.final_norm = nn.RMSNorm(8)


class ToyModel(nn.Module):
    """Non-HF names: word embeddings held directly by the base, a final norm, RMSNorm, padding rows."""

    def __init__(self) -> None:
        super().__init__()
        self.body = ToyBody()
        self.head = nn.Linear(8, 2)

    @property
    def base_model(self) -> nn.Module:
        return self.body

    def get_input_embeddings(self) -> nn.Module:
        return self.body.wte


def test_layout_and_reinit_on_a_model_with_other_names() -> None:
    torch.manual_seed(0)
    model = ToyModel()
    layout = find_layout(model)
    assert layout.base_prefix == "body"
    assert layout.embedding_prefixes == ("body.wte", "body.final_norm")
    assert layout.layer_prefixes == ("body.blocks.0", "body.blocks.1", "body.blocks.2")
    assert layout.pooler_prefix is None
    assert layout.depth_of("head.weight") == 5
    assert layout.depth_of("body.blocks.1.gate") == 2

    before = pretend_pretrained(model)
    names = reinit_top_layers(model, layout, 1, initializer_range=0.02, seed=0)
    top = "body.blocks.2"
    assert names == [f"{top}.mix.weight", f"{top}.mix.bias", f"{top}.norm.weight", f"{top}.buckets.weight"]
    block = model.body.blocks[2]
    assert torch.equal(block.norm.weight, torch.ones(8))
    assert torch.equal(block.buckets.weight[0], torch.zeros(8))  # padding row stays zero
    assert torch.equal(block.gate, before[f"{top}.gate"])


def test_layout_needs_encoder_layers() -> None:
    class NoLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)

        def get_input_embeddings(self) -> nn.Module:
            return self.embed

    with pytest.raises(ConfigError, match="cannot find the encoder layers"):
        find_layout(NoLayers())


# ---------------------------------------------------------------- freeze


@pytest.mark.parametrize("case", CASES)
def test_freeze_trains_exactly_the_upper_layers(case: str) -> None:
    for k in (0, 2, LAYERS):
        model = build(case)
        layout = find_layout(model)
        frozen = freeze_lower_layers(model, layout, k)
        expected_frozen = {n for n, _ in model.named_parameters() if expected_depth(case, n) <= k}
        assert set(frozen) == expected_frozen
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == {n for n, _ in model.named_parameters()} - expected_frozen
        assert any(expected_depth(case, n) == HEAD for n in trainable)  # the head always trains

        groups = build_param_groups(model, layout, lr=1e-3, weight_decay=0.01)
        optimizer = make_optimizer(groups, lr=1e-3)
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert in_optimizer == {id(p) for n, p in model.named_parameters() if n in trainable}
        assert {n for group in groups for n in group["names"]} == trainable


def test_freeze_beyond_the_model_is_rejected() -> None:
    model = build("bert-tok")
    with pytest.raises(ConfigError, match="K <= 4"):
        freeze_lower_layers(model, find_layout(model), LAYERS + 1)


# ---------------------------------------------------------------- groups and LLRD


@pytest.mark.parametrize("case", CASES)
def test_llrd_gives_each_depth_its_learning_rate(case: str) -> None:
    model = build(case)
    layout = find_layout(model)
    lr, decay = 1e-3, 0.5
    groups = build_param_groups(model, layout, lr=lr, weight_decay=0.01, llrd_decay=decay)
    seen: list[str] = []
    for group in groups:
        depths = {expected_depth(case, name) for name in group["names"]}
        assert depths == {group["depth"]}
        assert group["lr"] == pytest.approx(lr * decay ** (HEAD - group["depth"]), rel=1e-12)
        assert {expected_no_decay(name) for name in group["names"]} == {group["weight_decay"] == 0.0}
        seen.extend(group["names"])
    assert sorted(seen) == sorted(n for n, _ in model.named_parameters())
    assert [(g["depth"], g["weight_decay"] == 0.0) for g in groups] == sorted(
        (g["depth"], g["weight_decay"] == 0.0) for g in groups
    )
    assert {g["weight_decay"] for g in groups} == {0.0, 0.01}


def test_llrd_numbers_follow_electra() -> None:
    model = build("bert-seq")
    layout = find_layout(model)
    scales = layer_lr_scales(layout, [n for n, _ in model.named_parameters()], 0.8)
    assert scales["classifier.weight"] == 1.0
    assert scales["bert.pooler.dense.weight"] == pytest.approx(0.8)
    assert scales["bert.encoder.layer.3.output.dense.weight"] == pytest.approx(0.64)
    assert scales["bert.encoder.layer.0.attention.self.query.weight"] == pytest.approx(0.8**5)
    assert scales["bert.embeddings.word_embeddings.weight"] == pytest.approx(0.8**6)
    with pytest.raises(ConfigError, match="0 < D <= 1"):
        layer_lr_scales(layout, ["classifier.weight"], 1.5)


def test_groups_without_llrd_split_only_on_weight_decay() -> None:
    model = build("deberta-seq")
    groups = build_param_groups(model, find_layout(model), lr=2e-5, weight_decay=0.1)
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(2e-5, 0.1), (2e-5, 0.0)]
    assert all("depth" not in g for g in groups)
    assert set(groups[1]["names"]) == {n for n, _ in model.named_parameters() if expected_no_decay(n)}


def test_freeze_with_llrd_keeps_depth_rates_for_what_trains() -> None:
    model = build("electra-tok")
    applied = apply_techniques(model, parse_techniques(["freeze:2", "llrd:0.9"]), 0.02, seed=0)
    groups = build_param_groups(model, applied.layout, lr=1.0, weight_decay=0.0, llrd_decay=0.9)
    assert sorted({g["depth"] for g in groups}) == [3, 4, HEAD]
    assert {g["depth"]: g["lr"] for g in groups} == pytest.approx({3: 0.9**3, 4: 0.9**2, HEAD: 1.0})


# ---------------------------------------------------------------- re-init


@pytest.mark.parametrize("case", CASES)
def test_reinit_touches_only_the_top_layers_and_pooler(case: str) -> None:
    model = build(case)
    before = pretend_pretrained(model)
    names = reinit_top_layers(model, find_layout(model), 2, initializer_range=0.02, seed=7)
    expected = {n for n in before if expected_depth(case, n) in (LAYERS - 1, LAYERS, LAYERS + 1)}
    assert set(names) == expected and len(names) == len(expected)
    for name, parameter in model.named_parameters():
        if name not in expected:
            assert torch.equal(parameter, before[name]), name
        elif name.endswith(".bias"):
            assert torch.equal(parameter, torch.zeros_like(parameter)), name
        elif name.endswith("LayerNorm.weight"):
            assert torch.equal(parameter, torch.ones_like(parameter)), name
        else:
            assert parameter.abs().max() < 0.02 * 6 < before[name].abs().max(), name


def test_reinit_draws_from_normal_with_initializer_range() -> None:
    model = build("bert-seq")
    pretend_pretrained(model)
    names = reinit_top_layers(model, find_layout(model), 1, initializer_range=0.3, seed=0)
    params = dict(model.named_parameters())
    weights = torch.cat(
        [params[n].flatten() for n in names if n.endswith(".weight") and params[n].dim() == 2]
    )
    assert weights.numel() > 6000
    assert weights.std().item() == pytest.approx(0.3, rel=0.05)
    assert abs(weights.mean().item()) < 3 * 0.3 / math.sqrt(weights.numel())


def test_reinit_is_reproducible_and_leaves_global_rng_alone() -> None:
    first, second, third = build("roberta-seq"), build("roberta-seq"), build("roberta-seq")
    for model in (first, second, third):
        pretend_pretrained(model)
    rng_before = torch.get_rng_state()
    names = reinit_top_layers(first, find_layout(first), 1, 0.02, seed=11)
    reinit_top_layers(second, find_layout(second), 1, 0.02, seed=11)
    reinit_top_layers(third, find_layout(third), 1, 0.02, seed=12)
    assert torch.equal(torch.get_rng_state(), rng_before)
    one, two, three = (dict(m.named_parameters()) for m in (first, second, third))
    assert all(torch.equal(one[n], two[n]) for n in one)
    drawn = [n for n in names if n.endswith(".weight") and one[n].dim() == 2]
    assert drawn and not any(torch.equal(one[n], three[n]) for n in drawn)


# ---------------------------------------------------------------- plans against models


@pytest.mark.parametrize(
    ("specs", "says"),
    [
        (["freeze:5"], "freeze:K with K <= 4"),
        (["reinit:5"], "reinit:K with 1 <= K <= 4"),
        (["freeze:3", "reinit:2"], "make freeze + reinit <= 4 (e.g. freeze:2 with reinit:2)"),
        (["freeze:4", "mixout:0.1"], "make freeze + reinit < 4, or drop mixout"),
        (["freeze:2", "reinit:2", "mixout:0.1"], "no pretrained layer left to mix"),
    ],
)
def test_impossible_plans_are_rejected_before_any_change(specs: list[str], says: str) -> None:
    model = build("bert-seq")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ConfigError, match=re.escape(says)):
        apply_techniques(model, parse_techniques(specs), 0.02, seed=0)
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad and torch.equal(parameter, before[name])


def test_possible_plans_pass_validation() -> None:
    for specs in (["freeze:2", "reinit:2"], ["freeze:4", "llrd:0.9"], ["reinit:4"], ["standard"]):
        validate_plan(parse_techniques(specs), LAYERS)


def test_apply_reinits_then_freezes() -> None:
    model = build("bert-seq")
    pretend_pretrained(model)
    applied = apply_techniques(model, parse_techniques(["freeze:1", "reinit:1"]), 0.02, seed=3)
    assert applied.layout.num_layers == LAYERS
    assert set(applied.frozen_names) == {
        n for n, _ in model.named_parameters() if expected_depth("bert-seq", n) <= 1
    }
    assert set(applied.reinit_names) == {
        n for n, _ in model.named_parameters() if expected_depth("bert-seq", n) in (LAYERS, LAYERS + 1)
    }
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in applied.frozen_names)
    nothing = apply_techniques(build("bert-seq"), TechniquePlan(), 0.02, seed=3)
    assert nothing.frozen_names == () and nothing.reinit_names == ()


# ---------------------------------------------------------------- optimizers


def _run_steps(optimizer: torch.optim.Optimizer, parameter: nn.Parameter, grads: list[list[float]]) -> None:
    for grad in grads:
        parameter.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()


GRADS = [[0.5, -2.0, 0.0, 1e-3], [0.1, 1.0, -0.3, 1e-3], [-0.4, 0.2, 0.3, -2e-3]]
START = [1.0, -2.0, 0.5, 0.25]


def test_no_bias_correction_matches_a_hand_computation() -> None:
    lr, wd, (b1, b2), eps = 0.1, 0.01, (0.9, 0.999), 1e-8
    parameter = nn.Parameter(torch.tensor(START, dtype=torch.float64))
    groups = [{"params": [parameter], "lr": lr, "weight_decay": wd}]
    optimizer = make_optimizer(groups, lr=lr, bias_correction=False, betas=(b1, b2), eps=eps)
    assert isinstance(optimizer, AdamWNoBiasCorrection)
    _run_steps(optimizer, parameter, GRADS)

    expected = []
    for i, start in enumerate(START):
        p, m, v = start, 0.0, 0.0
        for grad in GRADS:
            g = grad[i]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - lr * (m / (math.sqrt(v) + eps) + wd * p)
        expected.append(p)
    assert parameter.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_no_bias_correction_first_step_is_larger_than_adamw() -> None:
    # Step 1 without correction: m = 0.1 g, v = 0.001 g^2, so |update| = 0.1/sqrt(0.001) = 3.1623 lr.
    plain = nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    corrected = nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    no_bc = make_optimizer([{"params": [plain], "weight_decay": 0.0}], lr=0.01, bias_correction=False)
    adamw = make_optimizer([{"params": [corrected], "weight_decay": 0.0}], lr=0.01)
    _run_steps(no_bc, plain, [[0.3, -5.0]])
    _run_steps(adamw, corrected, [[0.3, -5.0]])
    assert plain.tolist() == pytest.approx([1 - 0.031623, 1 + 0.031623], abs=1e-6)
    assert corrected.tolist() == pytest.approx([1 - 0.01, 1 + 0.01], abs=1e-6)


def test_default_optimizer_is_torch_adamw() -> None:
    ours = nn.Parameter(torch.tensor(START))
    reference = nn.Parameter(torch.tensor(START))
    optimizer = make_optimizer([{"params": [ours], "lr": 0.05, "weight_decay": 0.01}], lr=1.0)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["foreach"] is True
    expected = torch.optim.AdamW([reference], lr=0.05, weight_decay=0.01, foreach=False)
    for grad in GRADS:
        ours.grad = torch.tensor(grad)
        reference.grad = torch.tensor(grad)
        optimizer.step()
        expected.step()
    torch.testing.assert_close(ours.detach(), reference.detach(), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- mixout and pretrained-decay

SEQUENCE_CASES = ["bert-seq", "electra-seq", "roberta-seq", "deberta-seq"]


def test_parse_reads_mixout_and_pretrained_decay() -> None:
    plan = parse_techniques(["Pretrained-Decay:0.01", "mixout:0.1", "freeze:1"])
    assert plan == TechniquePlan(freeze_layers=1, mixout_probability=0.1, pretrained_decay=0.01)
    assert plan.label == "freeze:1+mixout:0.1+pretrained-decay:0.01"
    assert parse_techniques(["mixout:0", "pretrained-decay:0"]).label == "mixout:0+pretrained-decay:0"


def _train_steps(
    case: str, specs: list[str], steps: int = 3, weight_decay: float = 0.01
) -> dict[str, torch.Tensor]:
    """A few real AdamW steps on random batches, with the plan applied as the engine applies it."""
    model = build(case)
    plan = parse_techniques(specs)
    applied = apply_techniques(model, plan, 0.02, seed=0)
    groups = build_param_groups(
        model,
        applied.layout,
        1e-2,
        weight_decay,
        plan.llrd_decay,
        plan.pretrained_decay,
        applied.reinit_names,
    )
    optimizer = make_optimizer(groups, lr=1e-2)
    attach_pretrained_decay(optimizer)
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(2)  # dropout
    model.train()
    with mixout(model, plan):
        for _ in range(steps):
            input_ids = torch.randint(1, SIZES["vocab_size"], (4, 12), generator=generator)
            labels = torch.randint(0, 2, (4,), generator=generator)
            model(input_ids=input_ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("case", SEQUENCE_CASES)
def test_mixout_0_and_pretrained_decay_0_are_exactly_standard_training(case: str) -> None:
    standard = _train_steps(case, ["standard"])
    for specs in (["mixout:0"], ["pretrained-decay:0"], ["mixout:0", "pretrained-decay:0", "llrd:0.9"]):
        reference = standard if "llrd:0.9" not in specs else _train_steps(case, ["llrd:0.9"])
        trained = _train_steps(case, specs)
        for name, weight in reference.items():
            assert torch.equal(trained[name], weight), (specs, name)
    # the same comparison tells P > 0 and L > 0 apart, so the equalities above can fail
    for specs in (["mixout:0.3"], ["pretrained-decay:5"]):
        trained = _train_steps(case, specs)
        assert any(not torch.equal(trained[name], weight) for name, weight in standard.items()), specs


@pytest.mark.parametrize("case", SEQUENCE_CASES)
def test_mixout_mixes_exactly_the_pretrained_encoder_linears(case: str) -> None:
    base = CASES[case][1]
    model = build(case)

    def encoder_linears(layers: range) -> set[str]:
        return {
            name
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear)
            and any(name.startswith(f"{base}.encoder.layer.{i}.") for i in layers)
        }

    layout = find_layout(model)
    assert set(mixout_targets(model, layout, TechniquePlan(mixout_probability=0.1))) == encoder_linears(
        range(LAYERS)
    )
    apply_techniques(model, parse_techniques(["freeze:1", "reinit:1", "mixout:0.1"]), 0.02, seed=0)
    plan = parse_techniques(["freeze:1", "reinit:1", "mixout:0.1"])
    with mixout(model, plan) as mixed:
        assert set(mixed) == encoder_linears(range(1, LAYERS - 1))  # not frozen layer 0, not re-drawn layer 3
        shadowed = {name for name, module in model.named_modules() if "forward" in vars(module)}
        assert shadowed == set(mixed)  # the head, pooler and embeddings keep their own forward
    assert not any("forward" in vars(module) for module in model.modules())


def test_mixout_weight_has_the_weight_as_its_expectation() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.rand(6, 5, generator=generator) * 2 - 1
    pretrained = torch.rand(6, 5, generator=generator) * 2 - 1
    p, draws = 0.3, 20000
    torch.manual_seed(0)
    samples = torch.stack([mixout_weight(weight, pretrained, p) for _ in range(draws)])
    # each element is u (probability p) or (w - p u) / (1 - p) (probability 1 - p)
    kept = (weight - p * pretrained) / (1 - p)
    is_pretrained = torch.isclose(samples, pretrained.expand_as(samples), rtol=0, atol=1e-6)
    assert torch.all(is_pretrained | torch.isclose(samples, kept.expand_as(samples), rtol=0, atol=1e-6))
    assert is_pretrained.double().mean().item() == pytest.approx(p, abs=0.01)
    # per-element std of one draw is at most sqrt(p (1 - p)) * 2 / (1 - p) = 1.31: the mean is within 0.04
    torch.testing.assert_close(samples.mean(0), weight, rtol=0, atol=0.04)
    assert torch.equal(mixout_weight(weight, pretrained, 0.0), weight)


@pytest.mark.parametrize("case", SEQUENCE_CASES)
def test_mixout_is_off_in_evaluation_and_on_in_training(case: str) -> None:
    model = build(case)
    pretend_pretrained(model)
    for module in model.modules():  # without dropout, the only randomness left in training is mixout's
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    input_ids = torch.randint(1, SIZES["vocab_size"], (2, 10), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        plain = model(input_ids=input_ids).logits
        with mixout(model, TechniquePlan(mixout_probability=0.5)):
            assert torch.equal(model(input_ids=input_ids).logits, plain)  # eval: the weights are w
            model.train()
            trained = [model(input_ids=input_ids).logits for _ in range(2)]
            model.eval()
            assert torch.equal(model(input_ids=input_ids).logits, plain)
        model.train()
        assert torch.equal(model(input_ids=input_ids).logits, plain)  # after the context, training is plain
    # u = w on entry, so mixing still changes the forward: (w - p u) / (1 - p) = w where M = 0, u where M = 1;
    # move w off u to see it
    with torch.no_grad(), mixout(model, TechniquePlan(mixout_probability=0.5)):
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.add_(0.5)
        moved = [model(input_ids=input_ids).logits for _ in range(2)]
    assert all(torch.equal(t, plain) for t in trained)  # w = u: every mix is w itself
    assert not torch.equal(moved[0], moved[1])  # a fresh mask each training forward pass


@pytest.mark.parametrize("case", SEQUENCE_CASES)
def test_pretrained_decay_one_step_by_hand(case: str) -> None:
    model = build(case)
    plan = parse_techniques(["pretrained-decay:0.5", "reinit:1"])
    applied = apply_techniques(model, plan, 0.02, seed=0)
    lr, weight_decay = 0.1, 0.01
    groups = build_param_groups(
        model, applied.layout, lr, weight_decay, None, plan.pretrained_decay, applied.reinit_names
    )
    optimizer = make_optimizer(groups, lr=lr)
    assert attach_pretrained_decay(optimizer) == sum(
        1
        for n, _ in model.named_parameters()
        if expected_depth(case, n) < HEAD and n not in applied.reinit_names
    )
    pretrained = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():  # as if training had moved every weight away from u
        for parameter in model.parameters():
            parameter.add_(torch.rand(parameter.shape, generator=torch.Generator().manual_seed(5)) - 0.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for parameter in model.parameters():  # a zero gradient: Adam's update is 0, only the decays act
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()

    for name, weight in model.named_parameters():
        w, u = before[name], pretrained[name]
        zero_decay = 0.0 if expected_no_decay(name) else weight_decay
        if expected_depth(case, name) < HEAD and name not in applied.reinit_names:
            expected = (w - lr * 0.5 * (w - u)) * (1 - lr * zero_decay)
        else:  # the head and the re-drawn layer: no pretrained value, only the ordinary decay toward 0
            expected = w * (1 - lr * zero_decay)
        torch.testing.assert_close(weight.detach(), expected, rtol=1e-6, atol=1e-7, msg=name)


def test_mixout_and_pretrained_decay_train_end_to_end_and_save_a_plain_model(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    def run(name: str, techniques: list[str]) -> tuple[dict, dict[str, torch.Tensor]]:
        config = slice_config(
            shared_data,
            tmp_path / name,
            "GAD",
            tiny_bert,
            24,
            techniques=techniques,
            epochs=2,
            save_model=True,
        )
        results = run_training(config, tmp_path / name / "run")
        model_dir = tmp_path / name / "run" / "seed-0" / "model"
        return results.seeds[0], safetensors.torch.load_file(model_dir / "model.safetensors")

    standard, standard_weights = run("standard", [])
    zeros, zeros_weights = run("zeros", ["mixout:0", "pretrained-decay:0"])
    both, both_weights = run("both", ["mixout:0.3", "pretrained-decay:2"])
    assert zeros.history == standard.history and zeros.test == standard.test
    assert set(both_weights) == set(standard_weights)  # no parametrization or mixout buffer was saved
    assert all(torch.equal(zeros_weights[k], w) for k, w in standard_weights.items())
    assert any(not torch.equal(both_weights[k], w) for k, w in standard_weights.items())
    assert both.status in ("ok", "failed") and both.history != standard.history
    loaded = AutoModel.from_pretrained(tmp_path / "both" / "run" / "seed-0" / "model")
    assert all("forward" not in vars(module) for module in loaded.modules())
