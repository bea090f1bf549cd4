"""Head kinds: what the last layer computes, which fixes the loss, the label batch and the model class.

- `token`: one row of label logits per position (NER, PICO); cross-entropy over the labelled positions.
- `sequence`: one row of label logits per example from the pooled output; cross-entropy.
- `regression`: one output per example (similarity); mean squared error.
- `multilabel`: one independent logit per label; binary cross-entropy, averaged over the labels.

A task names its head kind (`Task.head`); `get_head(kind)` is the one object the engine, the batcher, the
model code and the model card ask for everything that depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from biotune.errors import ConfigError

HeadKind = Literal["token", "sequence", "regression", "multilabel"]

# The one ignore index: cross-entropy skips these label positions (specials, later sub-tokens, context words).
IGNORE_INDEX = -100


class Head:
    """A sequence-level head over one pooled vector, with softmax over the labels (`sequence`)."""

    kind: HeadKind = "sequence"
    # A pooled head reads one vector per example (CLS or the masked mean); a token head reads every position.
    pooled = True
    pipeline_tag = "text-classification"

    @property
    def auto_model_class(self) -> Any:
        """The Hugging Face class a CLS-pooled model of this head saves as and loads with."""
        return AutoModelForSequenceClassification

    def num_outputs(self, labels: Sequence[str]) -> int:
        return len(labels)

    def hf_config(self, labels: Sequence[str]) -> dict[str, Any]:
        """Keyword arguments of `from_pretrained` that size the head and name its labels."""
        kwargs: dict[str, Any] = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
        kwargs.update(self._problem_type())
        return kwargs

    def _problem_type(self) -> dict[str, str]:
        return {"problem_type": "single_label_classification"}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        """The batch's `labels` tensor; `width` is the padded sequence length of the batch."""
        return torch.tensor(labels, dtype=torch.long)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        """The head's loss, averaged over (`mean`) or summed over (`sum`) its units.

        A unit is what one loss term scores: a labelled token for token heads, an example otherwise (a
        multi-label example's loss is the mean over its labels).
        """
        return F.cross_entropy(logits, labels, reduction=reduction)

    def loss_units(self, features: Sequence[dict[str, Any]]) -> list[int]:
        """Per feature, how many loss units it holds (see `loss`)."""
        return [1] * len(features)

    def card_labels(self, labels: Sequence[str]) -> str:
        """The model card's line about the outputs."""
        return (
            "In `config.json` `id2label`: "
            + ", ".join(f"{i} = `{label}`" for i, label in enumerate(labels))
            + "."
        )

    def transformers_snippet(
        self,
        max_length: int,
        labels: Sequence[str],
        example: Any,
        truncation: str,
        mean: bool,
        folder: str,
        head_file: str,
    ) -> str:
        """The model card's code that runs the saved model with transformers alone and prints a prediction.

        example: the task's card example (a text, or a pair); truncation: the tokenizer's `truncation`
        argument as code; mean: the model mean-pools (encoder + `head_file`); folder: the model folder's
        name in the code.
        """
        return _sequence_snippet(self, max_length, labels, example, truncation, mean, folder, head_file)

    def snippet_notes(self, max_length: int) -> list[str]:
        """Lines the model card adds below the snippet."""
        return []

    def pipeline_snippet(self, example: Any, folder: str, truncation: str) -> str:
        """The model card's `transformers.pipeline` code (CLS-pooled models; the card runs it in tests)."""
        if isinstance(example, tuple):
            call = f"{{'text': {example[0]!r}, 'text_pair': {example[1]!r}}}"
        else:
            call = repr(example)
        return (
            "from transformers import pipeline\n\n"
            f'classify = pipeline("{self.pipeline_tag}", model="{folder}", '
            f"top_k=None{self._pipeline_options()})\n"
            f"print(classify([{call}], truncation={truncation}))  # per input, every label with its score\n"
        )

    def pipeline_notes(self, max_length: int) -> list[str]:
        """Lines the model card adds below the pipeline code: how its output relates to biotune's."""
        return [
            "`top_k=None` gives every label with its score, as `biotune predict`'s `probabilities`; the "
            f"tokenizer truncates at the {max_length} sub-tokens the model was trained with."
        ]

    def _pipeline_options(self) -> str:
        return ""

    def snippet_predict(self, params: str, texts: str) -> str:
        """The model card snippet's `predict` function, over its `logits` function."""
        return f"""

def predict({params}) -> dict[str, float]:
    probabilities = logits({texts}).softmax(-1)
    return {{config.id2label[i]: float(p) for i, p in enumerate(probabilities)}}
"""


class TokenHead(Head):
    kind: HeadKind = "token"
    pooled = False
    pipeline_tag = "token-classification"

    @property
    def auto_model_class(self) -> Any:
        return AutoModelForTokenClassification

    def _problem_type(self) -> dict[str, str]:
        return {}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        padded = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(labels):
            padded[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return padded

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction=reduction,
        )

    def loss_units(self, features: Sequence[dict[str, Any]]) -> list[int]:
        return [len(f["labels"]) - f["labels"].count(IGNORE_INDEX) for f in features]

    def transformers_snippet(
        self,
        max_length: int,
        labels: Sequence[str],
        example: Any,
        truncation: str,
        mean: bool,
        folder: str,
        head_file: str,
    ) -> str:
        return _token_snippet(max_length, example, folder)

    def pipeline_snippet(self, example: Any, folder: str, truncation: str) -> str:
        raw = example.replace(" .", ".")  # raw text, as biotune predict takes it
        return TOKEN_PIPELINE_SNIPPET.replace("FOLDER", folder).replace("EXAMPLE", repr(raw))

    def pipeline_notes(self, max_length: int) -> list[str]:
        return [
            "The entities are `biotune predict`'s (the tests compare them on real abstracts): the same words "
            "(the pipeline's `first` strategy joins a word's `##` sub-tokens, and the tokenizer splits at "
            "whitespace and at every punctuation mark, as biotune and the BLURB files do), the same spans "
            "(an entity starts at a `B` tag or at an `I` after `O`), the same score (the mean over the words "
            "of the first sub-token's probability) and label (`entity_group`, the type in `id2label`).",
            "Where they differ: biotune cuts a text into sentences and tags each alone, as the model was "
            "trained, so the code above feeds the pipeline one sentence at a time; a whole abstract in one "
            f"call is tagged in one context and can give other entities. A sentence longer than {max_length} "
            "sub-tokens is cut there by the pipeline, while biotune tags it in overlapping windows. The "
            "pipeline's `word` is the tokenizer's decoding (lower-cased for an uncased model); "
            "`text[start:end]` is the surface text, biotune's `text`.",
        ]

    def snippet_notes(self, max_length: int) -> list[str]:
        return [
            f"Give words split as in the BLURB files (whitespace, and every punctuation mark a word of its "
            f"own). This plain version cuts a sentence at {max_length} sub-tokens; "
            "`biotune predict` windows longer ones instead."
        ]


class RegressionHead(Head):
    kind: HeadKind = "regression"

    def num_outputs(self, labels: Sequence[str]) -> int:
        return 1

    def hf_config(self, labels: Sequence[str]) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        return torch.tensor(labels, dtype=torch.float)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        return F.mse_loss(logits.squeeze(-1), labels, reduction=reduction)

    def card_labels(self, labels: Sequence[str]) -> str:
        return "One output: the similarity score, on the scale of the training data."

    def _pipeline_options(self) -> str:
        return ', function_to_apply="none"'  # the raw score: the pipeline's default for one output is sigmoid

    def snippet_predict(self, params: str, texts: str) -> str:
        return f"""

def predict({params}) -> float:
    return float(logits({texts})[0])
"""


class MultilabelHead(Head):
    kind: HeadKind = "multilabel"

    def _problem_type(self) -> dict[str, str]:
        return {"problem_type": "multi_label_classification"}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        return torch.tensor(labels, dtype=torch.float)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction=reduction)
        return loss / labels.shape[-1] if reduction == "sum" else loss

    def snippet_predict(self, params: str, texts: str) -> str:
        return f"""

def predict({params}, threshold: float = 0.5) -> list[str]:
    probabilities = logits({texts}).sigmoid()
    return [config.id2label[i] for i, p in enumerate(probabilities) if p > threshold]
"""


# The pipeline tags one sentence at a time, as `biotune predict` does (and as the model was trained);
# the sentence rule is biotune.textsplit's, written as a regular expression.
TOKEN_PIPELINE_SNIPPET = r'''import re

from transformers import pipeline

ner = pipeline("token-classification", model="FOLDER", aggregation_strategy="first")
# a sentence ends at . ! or ? before an upper-case letter, and at a line break
BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines breaks on
SENTENCE_END = re.compile(rf"[.!?](?=[^\S{BREAKS}]*[A-Z])|[{BREAKS}]")


def entities(text: str) -> list[dict]:
    """The pipeline's entities of each sentence, with offsets into the whole text."""
    found, start = [], 0
    for end in [match.end() for match in SENTENCE_END.finditer(text)] + [len(text)]:
        if text[start:end].strip():
            for entity in ner(text[start:end]):
                found.append({**entity, "start": entity["start"] + start, "end": entity["end"] + start})
        start = end
    return found


print(entities(EXAMPLE))
'''


def _token_snippet(max_length: int, example: str, folder: str) -> str:
    words = example.split()

    return f'''import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

folder = "{folder}"  # or the Hub id it was uploaded to
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForTokenClassification.from_pretrained(folder).eval()


def word_logits(words: list[str]) -> torch.Tensor:
    """One row of label logits per word, read at the word's first sub-token."""
    encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length={max_length},
                         return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoding).logits[0]
    word_ids = encoding.word_ids()
    first = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
    return logits[first]


def predict(words: list[str]) -> list[str]:
    return [model.config.id2label[int(row.argmax())] for row in word_logits(words)]


print(predict({words!r}))
'''


def _sequence_snippet(
    head: Head,
    max_length: int,
    labels: Sequence[str],
    example: Any,
    truncation: str,
    mean: bool,
    folder: str,
    head_file: str,
) -> str:
    pair = isinstance(example, tuple)
    params = "first: str, second: str" if pair else "text: str"
    texts = "first, second" if pair else "text"
    if mean:
        outputs = head.num_outputs(labels)
        load = f'''import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = "{folder}"  # or the Hub id it was uploaded to
tokenizer = AutoTokenizer.from_pretrained(folder)
encoder = AutoModel.from_pretrained(folder).eval()
head = torch.nn.Linear(encoder.config.hidden_size, {outputs})
head.load_state_dict(load_file(f"{{folder}}/{head_file}"))
config = encoder.config
'''
        forward = """        hidden = encoder(**encoding).last_hidden_state
        mask = encoding["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return head((hidden * mask).sum(1) / mask.sum(1))[0]  # mean over the real tokens, then the head
"""
    else:
        load = f'''import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

folder = "{folder}"  # or the Hub id it was uploaded to
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
config = model.config
'''
        forward = "        return model(**encoding).logits[0]\n"
    logits = f"""

def logits({params}) -> torch.Tensor:
    encoding = tokenizer({texts}, truncation={truncation}, max_length={max_length}, return_tensors="pt")
    with torch.no_grad():
{forward}"""
    predict = head.snippet_predict(params, texts)
    call = ", ".join(map(repr, example)) if pair else repr(example)
    return load + logits + predict + f"\n\nprint(predict({call}))\n"


HEADS: dict[str, Head] = {
    head.kind: head for head in (TokenHead(), Head(), RegressionHead(), MultilabelHead())
}


def get_head(kind: str) -> Head:
    head = HEADS.get(kind)
    if head is None:
        raise ConfigError(f"unknown head kind {kind!r}; choose one of {', '.join(HEADS)}")
    return head
