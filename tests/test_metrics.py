"""BLURB metrics: hand-computed figures, and equality with seqeval / scikit-learn / scipy."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as seqeval_prfs
from sklearn.metrics import f1_score, precision_recall_fscore_support

from _blurb_data import SHARED_DATA, need_blurb_data
from biotune import metrics
from biotune.data.registry import custom_spec, get_spec
from biotune.errors import BiotuneError
from biotune.metrics import (
    MetricInputError,
    classification_scores,
    compute,
    compute_for_task,
    entity_spans,
    multilabel_scores,
    ner_scores,
    pico_scores,
    relation_scores,
    similarity_scores,
)


def to_seqeval(tags: list[str]) -> list[str]:
    """Bare B/I tags as seqeval wants them (typed tags pass through)."""
    return [f"{tag}-ENT" if tag in ("B", "I") else tag for tag in tags]


def random_sentences(rng: random.Random, count: int, alphabet: list[str]) -> list[list[str]]:
    return [[rng.choice(alphabet) for _ in range(rng.randint(0, 12))] for _ in range(count)]


def perturb(
    rng: random.Random, sentences: list[list[str]], alphabet: list[str], rate: float
) -> list[list[str]]:
    return [[rng.choice(alphabet) if rng.random() < rate else tag for tag in tags] for tags in sentences]


# ------------------------------------------------------------------------------------------------ NER


def test_entity_spans_by_hand() -> None:
    spans = entity_spans(["B", "I", "O", "I", "I", "B", "B"])
    assert spans == [("", 0, 1), ("", 3, 4), ("", 5, 5), ("", 6, 6)]
    assert entity_spans(["I", "O", "O"]) == [("", 0, 0)]
    assert entity_spans(["O", "O"]) == []
    assert entity_spans([]) == []
    assert entity_spans(["B-X", "I-Y", "I-Y", "B-Y"]) == [("X", 0, 0), ("Y", 1, 2), ("Y", 3, 3)]


untyped_tag = st.sampled_from(["B", "I", "O"])
typed_tag = st.sampled_from(["B-A", "I-A", "B-B", "I-B", "O", "I-A"])


@settings(max_examples=300, deadline=None)
@given(st.lists(untyped_tag, max_size=20))
def test_entity_spans_equal_seqeval_untyped(tags: list[str]) -> None:
    ours = [(start, end) for _, start, end in entity_spans(tags)]
    theirs = [(start, end) for _, start, end in get_entities(to_seqeval(tags))]
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(st.lists(typed_tag, max_size=20))
def test_entity_spans_equal_seqeval_typed(tags: list[str]) -> None:
    assert entity_spans(tags) == get_entities(tags)


@pytest.mark.parametrize("alphabet", [["B", "I", "O", "O", "O"], ["B-A", "I-A", "B-B", "I-B", "O", "O"]])
def test_ner_equals_seqeval_on_random_corpora(alphabet: list[str]) -> None:
    rng = random.Random(13)
    for trial in range(30):
        gold = random_sentences(rng, 20, alphabet)
        predicted = perturb(rng, gold, alphabet, rate=0.05 * (trial % 6))
        ours = ner_scores(gold, predicted)
        p, r, f, _ = seqeval_prfs(
            [to_seqeval(t) for t in gold],
            [to_seqeval(t) for t in predicted],
            average="micro",
            zero_division=0,
        )
        assert ours["precision"] == pytest.approx(100 * p, abs=1e-9)
        assert ours["recall"] == pytest.approx(100 * r, abs=1e-9)
        assert ours["score"] == ours["f1"] == pytest.approx(100 * f, abs=1e-9)


def test_ner_empty_predictions_score_zero_like_seqeval() -> None:
    gold = [["B", "I", "O"], ["I", "O", "B"]]
    predicted = [["O", "O", "O"], ["O", "O", "O"]]
    result = ner_scores(gold, predicted)
    assert result["score"] == 0.0
    assert (result["gold_entities"], result["predicted_entities"]) == (3, 0)
    _, _, f, _ = seqeval_prfs([to_seqeval(t) for t in gold], predicted, average="micro", zero_division=0)
    assert f == 0.0


def test_ner_by_hand() -> None:
    # gold entities: s0 (0,1), s0 (3,3), s1 (0,0) [starts with I]; predicted: s0 (0,1), s1 (0,1)
    gold = [["B", "I", "O", "B"], ["I", "O"]]
    predicted = [["B", "I", "O", "O"], ["B", "I"]]
    result = ner_scores(gold, predicted)
    assert result["correct_entities"] == 1
    assert result["precision"] == pytest.approx(50.0)
    assert result["recall"] == pytest.approx(100 / 3)
    assert result["score"] == pytest.approx(100 * 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert result["n"] == 2
    assert "per_class" not in result


def test_ner_typed_reports_per_class() -> None:
    result = ner_scores([["B-Chem", "O", "B-Dis"]], [["B-Chem", "O", "B-Chem"]])
    assert result["per_class"]["Chem"]["precision"] == pytest.approx(50.0)
    assert result["per_class"]["Dis"]["recall"] == 0.0


def test_ner_on_real_ncbi_test_equals_seqeval() -> None:
    path = SHARED_DATA / "NCBI-disease" / "test.tsv"
    need_blurb_data(path)
    sentences: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines()[:6000]:
        if line.strip():
            sentences[-1].append(line.split("\t")[1])
        elif sentences[-1]:
            sentences.append([])
    gold = [tags for tags in sentences if tags]
    rng = random.Random(0)
    predicted = perturb(rng, gold, ["B", "I", "O"], rate=0.1)
    ours = ner_scores(gold, predicted)
    _, _, f, _ = seqeval_prfs(
        [to_seqeval(t) for t in gold], [to_seqeval(t) for t in predicted], average="micro"
    )
    assert ours["score"] == pytest.approx(100 * f, abs=1e-9)
    assert ner_scores(gold, gold)["score"] == 100.0


def test_tag_sequences_validated() -> None:
    with pytest.raises(ValueError, match="sentence 1 .*gold has 2 tags, predicted has 1"):
        ner_scores([["O"], ["B", "I"]], [["O"], ["B"]])
    with pytest.raises(ValueError, match="gold has 2 items but predicted has 1: item 1"):
        ner_scores([["O"], ["B"]], [["O"]])
    with pytest.raises(ValueError, match="both empty"):
        ner_scores([], [])
    with pytest.raises(ValueError, match="sentence 0, word 1: tag 'X'"):
        ner_scores([["O", "X"]], [["O", "O"]])
    with pytest.raises(ValueError, match="list of tags"):
        ner_scores(["BIO"], ["BIO"])


def test_metric_errors_are_value_errors_and_biotune_errors_for_the_cli() -> None:
    with pytest.raises(MetricInputError) as caught:
        classification_scores(["a"], ["a", "b"])
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BiotuneError)


# ------------------------------------------------------------------------------------------------ PICO


def test_pico_by_hand() -> None:
    gold = [["I-PAR", "I-PAR", "O", "I-INT"], ["I-OUT", "O"]]
    predicted = [["I-PAR", "O", "O", "I-INT"], ["I-INT", "O"]]
    result = pico_scores(gold, predicted)
    # P: tp 1, fn 1 -> F1 2/3; I: tp 1, fp 1 -> F1 2/3; O(utcome): tp 0 -> 0
    assert result["per_class"]["I-PAR"]["f1"] == pytest.approx(200 / 3)
    assert result["per_class"]["I-INT"]["f1"] == pytest.approx(200 / 3)
    assert result["per_class"]["I-OUT"]["f1"] == 0.0
    assert result["score"] == pytest.approx(100 * 4 / 9)
    assert result["words"] == 6


def test_pico_equals_sklearn_macro_over_three_classes() -> None:
    rng = random.Random(5)
    alphabet = ["O", "O", "I-PAR", "I-INT", "I-OUT"]
    for _ in range(20):
        gold = random_sentences(rng, 15, alphabet)
        predicted = perturb(rng, gold, alphabet, rate=0.3)
        flat_gold = [t for s in gold for t in s]
        flat_predicted = [t for s in predicted for t in s]
        if not flat_gold:
            continue
        expected = f1_score(
            flat_gold, flat_predicted, average="macro", labels=["I-PAR", "I-INT", "I-OUT"], zero_division=0
        )
        assert pico_scores(gold, predicted)["score"] == pytest.approx(100 * expected, abs=1e-9)


def test_pico_rejects_ner_tags() -> None:
    with pytest.raises(ValueError, match="predicted sentence 0, word 0: tag 'B'"):
        pico_scores([["I-PAR"]], [["B"]])


# ------------------------------------------------------------------------------------------------ RE


def test_relation_by_hand() -> None:
    gold = ["CPR:4", "false", "CPR:3", "CPR:4", "false"]
    predicted = ["CPR:4", "CPR:4", "false", "CPR:3", "false"]
    # predicted positives 3 (1 right), gold positives 3 -> P = R = F1 = 1/3
    result = relation_scores(gold, predicted, "false")
    assert result["precision"] == pytest.approx(100 / 3)
    assert result["recall"] == pytest.approx(100 / 3)
    assert result["score"] == pytest.approx(100 / 3)
    assert set(result["per_class"]) == {"CPR:3", "CPR:4"}


def test_relation_equals_sklearn_micro_over_positive_labels() -> None:
    rng = random.Random(7)
    labels = ["DDI-false"] * 4 + ["DDI-effect", "DDI-advise", "DDI-int", "DDI-mechanism"]
    for _ in range(20):
        gold = [rng.choice(labels) for _ in range(60)]
        predicted = [rng.choice(labels) if rng.random() < 0.4 else g for g in gold]
        positive = sorted(set(gold + predicted) - {"DDI-false"})
        p, r, f, _ = precision_recall_fscore_support(
            gold, predicted, labels=positive, average="micro", zero_division=0
        )
        result = relation_scores(gold, predicted, "DDI-false")
        figures = (result["precision"], result["recall"], result["f1"])
        assert figures == pytest.approx((100 * p, 100 * r, 100 * f))


def test_relation_all_negative_predictions_score_zero() -> None:
    result = relation_scores(["1", "0", "1"], ["0", "0", "0"], "0")
    assert result["score"] == 0.0
    assert result["notes"]
    assert relation_scores(["0", "0"], ["0", "0"], "0")["score"] == 0.0


def test_relation_int_predictions_match_string_gold_and_negative_is_inferred() -> None:
    result = relation_scores(["1", "0", "1", "0"], [1, 0, 0, 1], None)
    assert result["negative_label"] == "0"
    assert result["score"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="negative"):
        relation_scores(["a", "b"], ["a", "b"], None)


# ------------------------------------------------------------------------------------------------ labels


def test_classification_and_qa() -> None:
    gold = ["yes", "no", "maybe", "yes"]
    predicted = ["yes", "yes", "maybe", "yes"]
    result = compute_for_task("qa", gold, predicted)
    assert result["score"] == result["accuracy"] == pytest.approx(75.0)
    expected_macro = f1_score(gold, predicted, average="macro", zero_division=0)
    assert result["macro_f1"] == pytest.approx(100 * expected_macro)
    # by hand: yes F1 0.8, no 0, maybe 1 -> 60
    assert result["macro_f1"] == pytest.approx(60.0)
    assert compute_for_task("classification", gold, predicted)["score"] == pytest.approx(75.0)


def test_multilabel_by_hand_and_sklearn() -> None:
    gold = [{0, 2}, {1}, set()]
    predicted = [{0}, {1, 3}, {2}]
    # cells: tp 2, predicted 4, gold 3 -> P 1/2, R 2/3, F1 4/7
    result = multilabel_scores(gold, predicted)
    assert result["precision"] == pytest.approx(50.0)
    assert result["recall"] == pytest.approx(200 / 3)
    assert result["score"] == pytest.approx(400 / 7)
    rng = np.random.default_rng(3)
    gold_matrix = rng.random((40, 10)) < 0.2
    predicted_matrix = rng.random((40, 10)) < 0.25
    as_sets = [set(np.flatnonzero(row).tolist()) for row in gold_matrix]
    predicted_sets = [frozenset(np.flatnonzero(row).tolist()) for row in predicted_matrix]
    expected = f1_score(gold_matrix, predicted_matrix, average="micro")
    assert multilabel_scores(as_sets, predicted_sets)["score"] == pytest.approx(100 * expected)


def test_multilabel_rejects_a_zero_one_vector() -> None:
    with pytest.raises(ValueError, match="set of indices"):
        multilabel_scores([{1}], [[0.0, 1.0]])


def test_similarity_by_hand_and_scipy() -> None:
    gold = [0.0, 1.0, 2.0, 3.0]
    predicted = [0.0, 1.0, 2.0, 4.0]
    # deviations: x (-1.5, -.5, .5, 1.5), y (-1.75, -.75, .25, 2.25): sum xy 6.5, sum xx 5, sum yy 8.75
    result = similarity_scores(gold, predicted)
    assert result["score"] == pytest.approx(100 * 6.5 / math.sqrt(5 * 8.75))
    assert result["score"] == pytest.approx(100 * pearsonr(gold, predicted)[0])
    assert result["mse"] == pytest.approx(0.25)


def test_similarity_constant_predictions_score_zero_with_a_note() -> None:
    result = similarity_scores([0.0, 1.0, 3.0], [2.0, 2.0, 2.0])
    assert result["score"] == 0.0
    assert not math.isnan(result["spearman"])
    assert "constant" in result["notes"][0]
    with pytest.raises(ValueError, match="predicted item 1 is nan"):
        similarity_scores([0.0, 1.0], [0.0, float("nan")])
    with pytest.raises(ValueError, match="at least 2"):
        similarity_scores([1.0], [1.0])


# ------------------------------------------------------------------------------------------------ dispatch


def test_compute_by_registry_name_alias_and_spec() -> None:
    ner = compute("ncbi", [["B", "I", "O"]], [["B", "I", "O"]])
    assert ner["score"] == 100.0 and ner["dataset"] == "NCBI-disease"
    gad = compute("GAD", ["1", "0", "1", "1"], [1, 1, 1, 0])
    assert gad["negative_label"] == "0"
    assert gad["score"] == pytest.approx(100 * 2 / 3)  # P 2/3, R 2/3
    hoc = compute(get_spec("HoC"), [{0}, {3, 4}], [{0}, {4}])
    assert hoc["score"] == pytest.approx(100 * 2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert compute("BIOSSES", [0.0, 1.0, 2.0], [0.0, 1.0, 2.0])["score"] == pytest.approx(100.0)
    assert compute("pubmedqa", ["yes", "no"], ["yes", "yes"])["score"] == pytest.approx(50.0)
    assert compute("ebmnlp", [["I-PAR"]], [["I-PAR"]])["score"] == pytest.approx(100 / 3)


def test_compute_uses_the_spec_negative_label() -> None:
    # with "1" as the negative class only "0" counts: predicted "0" once, right -> precision 100
    # (were "0" the negative one, precision would be 50)
    spec = custom_spec("re", ["0", "1"], negative_label="1")
    assert compute(spec, ["1", "0", "0"], ["1", "0", "1"])["precision"] == pytest.approx(100.0)
    assert compute("chemprot", ["false", "false"], ["false", "false"])["score"] == 0.0


def test_compute_accepts_a_task_type_and_rejects_unknown_names() -> None:
    assert compute("re", ["DDI-false", "DDI-int"], ["DDI-int", "DDI-int"])["score"] == pytest.approx(200 / 3)
    with pytest.raises(BiotuneError, match="unknown dataset"):
        compute("no-such-set", ["a"], ["a"])
    with pytest.raises(BiotuneError, match="unknown task type"):
        compute_for_task("regression", [1.0], [1.0])


def test_compute_takes_task_type_and_negative_label_from_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    class Spec:
        name, task_type, negative_label = "toy-re", "re", "none"

    monkeypatch.setattr(metrics, "get_spec", lambda name: Spec())
    assert compute("whatever", ["none", "r"], ["r", "r"])["dataset"] == "toy-re"
