"""The CPU training dropout: nn.Dropout's distribution from a cheaper mask, and a clean swap in and out."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForTokenClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from biotune import dropout
from biotune.dropout import ATTENTION_NAME, CpuDropout, cpu_dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_drops_at_rate_p_in_every_16_bit_slice_and_keeps_the_mean(p: float) -> None:
    torch.manual_seed(0)
    like = torch.empty(1 << 22)
    mask = keep_mask(like, p)
    dropped = round(p * 65536) / 65536
    scale = 1 / (1 - dropped)
    assert torch.unique(mask).tolist() == pytest.approx([0.0, scale])
    # each of a 64-bit word's four slices on its own: a biased bit (e.g. an always-0 sign) would show here
    per_slice = (mask.view(-1, 4) == 0).double().mean(dim=0)
    sigma = math.sqrt(dropped * (1 - dropped) / (mask.numel() / 4))
    assert torch.all((per_slice - dropped).abs() < 6 * sigma), per_slice
    assert abs(dropped - p) <= 0.5 / 65536
    assert float(mask.double().mean()) == pytest.approx(1.0, abs=6 * sigma * scale)


def test_output_statistics_match_nn_dropout() -> None:
    torch.manual_seed(1)
    x = torch.randn(1 << 20) + 2.0
    ours, reference = CpuDropout(0.3).train(), nn.Dropout(0.3).train()
    a, b = ours(x), reference(x)
    assert float((a == 0).double().mean()) == pytest.approx(float((b == 0).double().mean()), abs=0.003)
    assert float(a.mean()) == pytest.approx(float(b.mean()), abs=0.01)
    assert float(a.std()) == pytest.approx(float(b.std()), rel=0.01)
    kept = a != 0
    assert torch.allclose(a[kept], x[kept] / (1 - round(0.3 * 65536) / 65536))


def test_seeded_identity_in_eval_and_edge_rates() -> None:
    x = torch.randn(64, 33)
    torch.manual_seed(5)
    first = CpuDropout(0.2).train()(x)
    torch.manual_seed(5)
    again = CpuDropout(0.2).train()(x)
    torch.manual_seed(6)
    other = CpuDropout(0.2).train()(x)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(CpuDropout(0.2).eval()(x), x)
    assert torch.equal(CpuDropout(0.0).train()(x), x)
    assert torch.equal(CpuDropout(1.0).train()(x), torch.zeros_like(x))


def test_gradient_is_the_mask() -> None:
    torch.manual_seed(2)
    x = torch.randn(40, 7, requires_grad=True)
    torch.manual_seed(3)
    y = CpuDropout(0.4).train()(x)
    y.sum().backward()
    torch.manual_seed(3)
    assert torch.equal(x.grad, keep_mask(x, 0.4))


def _qkv(batch: int = 2, heads: int = 3, length: int = 6, dim: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(4)
    return [torch.randn(batch, heads, length, dim) for _ in range(3)]


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_attention_with_an_all_keep_mask_is_transformers_sdpa(
    mask_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    query, key, value = _qkv()
    padding = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    padding[1, :, :, 4:] = False
    masks = {
        "none": None,
        "bool": padding,
        "float": torch.zeros(2, 1, 6, 6).masked_fill(~padding, torch.finfo(torch.float32).min),
    }
    module = nn.Module().train()
    module.is_causal = False
    monkeypatch.setattr(dropout, "keep_mask", lambda like, p, generator=None: torch.ones_like(like))
    ours, weights = dropout.attention(module, query, key, value, masks[mask_kind], dropout=0.1)
    expected, _ = sdpa_attention_forward(module.eval(), query, key, value, masks[mask_kind], dropout=0.0)
    assert weights is None
    assert torch.allclose(ours, expected, atol=1e-6)


def test_attention_is_transformers_sdpa_outside_training_and_drops_inside() -> None:
    query, key, value = _qkv()
    module = nn.Module()
    module.is_causal = False
    plain, _ = sdpa_attention_forward(module.eval(), query, key, value, None, dropout=0.0)
    evaluated, _ = dropout.attention(module.eval(), query, key, value, None, dropout=0.0)
    trained, _ = dropout.attention(module.train(), query, key, value, None, dropout=0.5)
    assert torch.equal(evaluated, plain)
    assert not torch.allclose(trained, plain, atol=1e-3)
    torch.manual_seed(8)
    causal, _ = sdpa_attention_forward(module, query, key, value, None, dropout=0.5, is_causal=True)
    torch.manual_seed(8)
    delegated, _ = dropout.attention(module, query, key, value, None, dropout=0.5, is_causal=True)
    assert torch.equal(delegated, causal)  # anything unusual is transformers' own path


def _tiny_bert(hidden_dropout: float, attention_dropout: float) -> BertForTokenClassification:
    config = BertConfig(
        vocab_size=99,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=hidden_dropout,
        attention_probs_dropout_prob=attention_dropout,
        num_labels=3,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    return BertForTokenClassification(config)


def _padded_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(10)
    padding = torch.ones(3, 9, dtype=torch.long)
    padding[1, 5:] = 0
    padding[2, 2:] = 0
    return {"input_ids": torch.randint(0, 99, (3, 9)), "attention_mask": padding}


def test_swap_is_complete_inside_and_undone_after() -> None:
    model = _tiny_bert(0.1, 0.1)
    batch = _padded_batch()
    reference = model.eval()(**batch).logits
    stock = [type(m) for m in model.modules()]
    with cpu_dropout(model) as swapped:
        assert swapped == sum(1 for t in stock if t is nn.Dropout)
        assert not any(type(m) is nn.Dropout for m in model.modules())
        assert model.config._attn_implementation == ATTENTION_NAME
        assert torch.equal(model.eval()(**batch).logits, reference)
    assert [type(m) for m in model.modules()] == stock
    assert model.config._attn_implementation == "sdpa"
    assert torch.equal(model.eval()(**batch).logits, reference)


def test_training_path_masks_padding_like_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every element kept, the training path is the evaluation path: padding stays masked."""
    model = _tiny_bert(0.1, 0.1)
    batch = _padded_batch()
    reference = model.eval()(**batch).logits
    monkeypatch.setattr(dropout, "keep_mask", lambda like, p, generator=None: torch.ones_like(like))
    with cpu_dropout(model):
        trained = model.train()(**batch).logits
    assert torch.allclose(trained, reference, atol=1e-5)


def test_attention_dropout_takes_effect_in_a_model_and_is_seeded() -> None:
    model = _tiny_bert(0.0, 0.5)  # only the attention probabilities are dropped
    ids = torch.randint(0, 99, (3, 9))
    reference = model.eval()(input_ids=ids).logits
    with cpu_dropout(model):
        model.train()
        torch.manual_seed(9)
        first = model(input_ids=ids).logits
        torch.manual_seed(9)
        again = model(input_ids=ids).logits
    assert torch.equal(first, again)
    assert not torch.allclose(first, reference, atol=1e-4)


def test_a_model_without_sdpa_keeps_its_attention_and_swaps_its_dropout_modules(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DeBERTa-v2 has its own (eager) attention, which takes no custom attention function: it is left as
    it is, while its nn.Dropout modules (attention probabilities included) are swapped like any other."""
    config = DebertaV2Config(
        vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    model = DebertaV2ForSequenceClassification(config)
    attention = model.config._attn_implementation
    stock = {name: module for name, module in model.named_modules() if type(module) is nn.Dropout}
    assert attention != "sdpa" and stock
    with cpu_dropout(model) as swapped:
        inside = dict(model.named_modules())
        assert swapped == len(stock)
        assert all(type(inside[name]) is CpuDropout and inside[name].p == stock[name].p for name in stock)
        assert model.config._attn_implementation == attention
        model.train()(input_ids=torch.randint(0, 99, (2, 5))).logits.sum().backward()
    after = dict(model.named_modules())
    assert all(after[name] is module for name, module in stock.items())  # the very modules put back
    assert "does not support setting its attention" not in caplog.text
