"""Run a saved model on new inputs: raw text, plain text files or JSONL, to one JSON-ready row per input.

What a row holds, by task type:
- ner / pico: `{"text", "entities": [{"start", "end", "text", "label", "score"}]}`. The text is cut into
  words and sentences by `biotune.textsplit` (the BLURB tokenization rule), each sentence is tagged (the token
  task windows a sentence longer than the model's max length), and spans are read from the tags with seqeval's
  `get_entities`: NER spans start at a `B` or at an `I` after `O` (seqeval's default, as the metric scores
  them); PICO spans are maximal runs of the same `I-XXX` tag. The label is the tag's type (`PAR`, `INT`,
  `OUT` for PICO; `Chemical` for `B-Chemical`); untyped BLURB tags (`B`/`I`) get the dataset's entity type
  (`DATASET_ENTITY_TYPES`), else `ENTITY`. Offsets are characters of the input: `text[start:end]` is the
  entity's surface text. The score is the mean, over the span's words, of the probability of each word's tag.
- re / classification: `{"label", "probabilities"}`; similarity: `{"score"}` (the regression output, on the
  scale the model was trained on: 0-4 for BIOSSES); multilabel: `{"labels", "probabilities"}` with the
  labels whose sigmoid probability is above the threshold; qa: `{"answer", "probabilities"}`.
An input object's `id` field, when present, is copied to the front of its row.

Relation extraction reads texts whose entities are already masked (`@GENE$ ... @DISEASE$`, as in the BLURB
files), or raw `text` with `entity1`/`entity2` character spans, which are masked here: an entity's placeholder
is `@TYPE$` from its `type` field (`GENE` or `@GENE$`); without a type, the model's only single-entity
placeholder when it has exactly one (DDI's `@DRUG$`); two overlapping spans become one mention masked by the
model's combined placeholder (`@CHEM-GENE$`, `@DRUG-DRUG$`). The placeholders a model knows are the ones
its tokenizer carries as added tokens; any other is an error, since the model never saw it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from biotune.device import DeviceRecipe
from biotune.errors import ConfigError, DataError
from biotune.inference import as_recipe, predict_outputs
from biotune.run_folder import ModelCard
from biotune.tasks import PredictInput, Task, TaskOptions, get_task
from biotune.tasks.placeholders import PLACEHOLDER_PATTERN, find_placeholders

# entity_spans: a token task's output row, re-exported for callers of this module
from biotune.tasks.token import DEFAULT_ENTITY_TYPE
from biotune.tasks.token import entity_spans as entity_spans

Row = dict[str, Any]
InputValue = str | dict[str, Any]
ProgressCallback = Callable[[int], None]

# Untyped B/I/O files of BLURB: the one entity type each was annotated for. JNLPBA collapses five types
# (protein, DNA, RNA, cell line, cell type) into one tag, so it keeps the generic name.
DATASET_ENTITY_TYPES: dict[str, str] = {
    "BC5CDR-chem": "CHEMICAL",
    "BC5CDR-disease": "DISEASE",
    "NCBI-disease": "DISEASE",
    "BC2GM": "GENE",
    "JNLPBA": DEFAULT_ENTITY_TYPE,
}
TEXT_FIELDS = ("text", "sentence")
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
INPUT_FORMATS = ("auto", "text", "jsonl")
BACKENDS = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class InputItem:
    """One input and where it came from, so an error can name the file and line (or the list index)."""

    value: Any
    where: str
    line: int | None = None

    def error(self, problem: str, fix: str | None = None) -> DataError:
        return DataError(self.where, self.line, problem, fix)


def as_items(inputs: Sequence[InputValue | InputItem], where: str = "inputs") -> list[InputItem]:
    """Python values become items named by their index (`inputs[2]`); items pass through."""
    if isinstance(inputs, str | dict):
        raise ConfigError("predict takes a list of inputs: wrap a single text or object in a list")
    return [
        value if isinstance(value, InputItem) else InputItem(value, f"{where}[{index}]")
        for index, value in enumerate(inputs)
    ]


def read_inputs(path: Path, input_format: str = "auto") -> list[InputItem]:
    """A plain text file (one document or sentence per line) or JSONL (one object per line).

    `auto` reads .jsonl/.ndjson/.json files as JSONL and anything else as text. Blank lines are skipped
    in both; line numbers in errors count every line of the file.
    """
    if input_format not in INPUT_FORMATS:
        raise ConfigError(f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such input file", "check the path")
    try:
        content = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first input
    except UnicodeDecodeError as exc:
        raise DataError(
            path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8"
        ) from exc
    jsonl = input_format == "jsonl" or (input_format == "auto" and path.suffix.lower() in JSONL_SUFFIXES)
    items: list[InputItem] = []
    for number, line in enumerate(content.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        items.append(InputItem(_json_line(line, path, number) if jsonl else line, str(path), number))
    if not items:
        raise DataError(path, None, "the file holds no inputs (every line is blank)")
    return items


def _json_line(line: str, path: Path, number: int) -> Any:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            path,
            number,
            f"not valid JSON: {exc.msg} at column {exc.colno}",
            'write one JSON object per line, e.g. {"text": "..."}',
        ) from exc
    if not isinstance(value, dict):
        raise DataError(
            path,
            number,
            f"a JSONL line must be a JSON object, got a JSON {_json_kind(value)}",
            'write one object per line, e.g. {"text": "..."}',
        )
    return value


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


@dataclass
class _Prepared:
    """A validated input: where it came from, its id, and what the task made of it (its examples)."""

    item: InputItem
    task_input: PredictInput
    row_id: Any = None


def known_placeholders(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """RE placeholders the model was trained with: the ones its tokenizer carries as added tokens."""
    return sorted(token for token in tokenizer.get_added_vocab() if PLACEHOLDER_PATTERN.fullmatch(token))


def mask_entities(text: str, entity1: Any, entity2: Any, known: Sequence[str], item: InputItem) -> str:
    """Raw text + two entity spans -> the placeholder form the RE model was trained on."""
    spans = [
        _entity_span(entity, name, text, item)
        for entity, name in ((entity1, "entity1"), (entity2, "entity2"))
    ]
    (start1, end1, type1), (start2, end2, type2) = spans
    if start1 < end2 and start2 < end1:
        combined = [p for p in known if "-" in p]
        if len(combined) == 1:
            placeholder = combined[0]
        elif not known and type1 and type2:
            placeholder = f"@{type1}-{type2}$"
        else:
            raise item.error(
                "entity1 and entity2 overlap, and this model has no single placeholder for "
                f"overlapping mentions (it knows {', '.join(known) or 'none'})",
                "give two separate spans",
            )
        start, end = min(start1, start2), max(end1, end2)
        return text[:start] + placeholder + text[end:]
    masked = text
    for start, end, entity_type in sorted(spans, key=lambda span: -span[0]):  # right to left keeps offsets
        masked = masked[:start] + _placeholder(entity_type, known, item) + masked[end:]
    return masked


def _entity_span(entity: Any, name: str, text: str, item: InputItem) -> tuple[int, int, str | None]:
    example = '{"start": 0, "end": 5, "type": "GENE"}'
    if not isinstance(entity, dict):
        raise item.error(f"{name} must be an object with start and end character offsets", f"e.g. {example}")
    bounds = []
    for key in ("start", "end"):
        value = entity.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise item.error(
                f"{name}.{key} must be an integer character offset, got {value!r}", f"e.g. {example}"
            )
        bounds.append(value)
    start, end = bounds
    if not 0 <= start < end <= len(text) or not text[start:end].strip():
        raise item.error(
            f"{name} span [{start}, {end}) is not a non-empty part of the text ({len(text)} characters)",
            "offsets count characters from 0; end is exclusive",
        )
    entity_type = entity.get("type")
    if entity_type is not None and (not isinstance(entity_type, str) or not entity_type.strip("@$ ")):
        raise item.error(f"{name}.type must be a name such as GENE or CHEMICAL, got {entity_type!r}")
    return start, end, entity_type.strip().strip("@$").upper() if entity_type else None


def _placeholder(entity_type: str | None, known: Sequence[str], item: InputItem) -> str:
    singles = [p for p in known if "-" not in p]
    if entity_type is None:
        if len(singles) == 1:
            return singles[0]
        names = ", ".join(p.strip("@$") for p in singles) or "e.g. GENE, CHEMICAL, DRUG, DISEASE"
        raise item.error(
            "an entity has no type, and this model has more than one entity placeholder to choose from",
            f'add "type" to entity1 and entity2 ({names})',
        )
    placeholder = f"@{entity_type}$"
    if not PLACEHOLDER_PATTERN.fullmatch(placeholder):
        raise item.error(f"entity type {entity_type!r} is not a placeholder name", "use letters, digits, '-'")
    if known and placeholder not in known:
        raise item.error(
            f"entity type {entity_type!r} gives the placeholder {placeholder}, which this model "
            "never saw in training",
            f"use one of {', '.join(p.strip('@$') for p in singles)}",
        )
    return placeholder


class Predictor:
    """A saved model ready to predict: `predict(inputs)` returns one row per input (see the module doc)."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        card: ModelCard,
        folder: Path,
        device: torch.device | DeviceRecipe,
        batch_size: int = 32,
        threshold: float = 0.5,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.recipe = as_recipe(device)
        self.model = model.to(self.recipe.device).eval()
        self.tokenizer = tokenizer
        self.card = card
        self.folder = Path(folder)
        self.device = self.recipe.device
        self.batch_size = batch_size
        self.threshold = _check_threshold(threshold)
        options = TaskOptions(pair_encoding=card.pair_encoding)
        self.task: Task = get_task(card.task_type, card.labels, card.negative_label, options)
        self.max_length = card.max_length
        self.placeholders = known_placeholders(tokenizer) if self.task.entity_placeholders else []
        self.entity_type = entity_type_of(card)

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        device: str = "auto",
        batch_size: int = 32,
        threshold: float = 0.5,
        backend: str = "auto",
    ) -> Predictor:
        """A model folder written by `biotune train` (seed-N/model) or `biotune export`.

        backend: `torch`, `onnx` (the folder's model.onnx under onnxruntime, on the CPU), or `auto`: onnx
        where `biotune export --format onnx` wrote a model.onnx and onnxruntime is installed, else torch.
        """
        from biotune.device import inference_recipe
        from biotune.models import load_saved_card, load_saved_model, load_saved_tokenizer

        folder = Path(folder)
        card = load_saved_card(folder)
        if choose_backend(folder, card, backend, device) == "onnx":
            from biotune.onnx_model import ONNX_FILE, OnnxModel

            model: nn.Module = OnnxModel(folder / ONNX_FILE)
            recipe = inference_recipe("cpu", "fp32")
            return cls(model, load_saved_tokenizer(folder), card, folder, recipe, batch_size, threshold)
        model, tokenizer, card = load_saved_model(folder)
        # the precision the model was trained (and dev-selected) in
        recipe = inference_recipe(device, card.config.get("precision", "fp32"))
        return cls(model, tokenizer, card, folder, recipe, batch_size, threshold)

    @property
    def backend(self) -> str:
        from biotune.onnx_model import OnnxModel

        return "onnx" if isinstance(self.model, OnnxModel) else "torch"

    @property
    def task_type(self) -> str:
        return self.task.task_type

    @property
    def labels(self) -> list[str]:
        return list(self.task.labels)

    def __repr__(self) -> str:
        return (
            f"Predictor(task_type={self.task_type!r}, labels={self.labels}, folder={str(self.folder)!r}, "
            f"backend={self.backend!r})"
        )

    def predict(self, inputs: Sequence[InputValue | InputItem], threshold: float | None = None) -> list[Row]:
        """One row per input, in input order. Strings are texts; objects carry the task's fields."""
        return list(self.predict_iter(inputs, threshold))

    def predict_iter(
        self,
        inputs: Sequence[InputValue | InputItem],
        threshold: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[Row]:
        """Rows as they are computed, `batch_size` inputs at a time; every input is checked before any work.

        on_progress: called with the number of inputs just finished.
        """
        limit = self.threshold if threshold is None else _check_threshold(threshold)
        prepared = [self._prepare(item) for item in as_items(inputs)]
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            for entry, scores in zip(chunk, self._scores(chunk), strict=True):
                yield self._row(entry, scores, limit)
            if on_progress:
                on_progress(len(chunk))

    def probabilities(self, inputs: Sequence[InputValue | InputItem]) -> list[np.ndarray]:
        """The model's numbers per input, in `labels` order: token tasks a [words, labels] array over the
        words of `biotune.textsplit.split_words`; classification softmax and multi-label sigmoid
        probabilities; similarity a one-element array holding the score."""
        prepared = [self._prepare(item) for item in as_items(inputs)]
        result: list[np.ndarray] = []
        for start in range(0, len(prepared), self.batch_size):
            result.extend(self._scores(prepared[start : start + self.batch_size]))
        return result

    # ------------------------------------------------------------------------------------------ inputs

    def _prepare(self, item: InputItem) -> _Prepared:
        value = item.value
        if not isinstance(value, str | dict):
            raise item.error(f"an input must be a text or an object, got {type(value).__name__}")
        name = item.where if item.line is None else f"{item.where}:{item.line}"
        fields = self.task.pair_fields
        if fields is not None:
            texts = tuple(self._field(item, key, fields) for key in fields)
        else:
            text = self._text(item)
            texts = (self._relation_text(item, text) if self.task.entity_placeholders else text,)
        row_id = value.get("id") if isinstance(value, dict) else None
        return _Prepared(item, self.task.predict_input(name, texts), row_id)

    def _field(self, item: InputItem, key: str, fields: tuple[str, str]) -> str:
        shape = "{" + ", ".join(f'"{f}": "..."' for f in fields) + "}"
        if not isinstance(item.value, dict):
            raise item.error(
                f"a {self.task_type} model reads pairs, not a plain text",
                f"give JSON objects {shape} (a JSONL file with --input)",
            )
        if key not in item.value:
            raise item.error(f"missing field {key!r}", f"a {self.task_type} model reads {shape}")
        return self._non_empty(item, item.value[key], key)

    def _text(self, item: InputItem) -> str:
        if isinstance(item.value, str):
            return self._non_empty(item, item.value, "text")
        present = [key for key in TEXT_FIELDS if key in item.value]
        if not present:
            raise item.error(
                "missing field 'text'",
                f'a {self.task_type} model reads {{"text": "..."}} '
                "('sentence' is accepted as another name for it)",
            )
        if len(present) > 1:
            raise item.error("both 'text' and 'sentence' given", "keep one of them")
        return self._non_empty(item, item.value[present[0]], present[0])

    @staticmethod
    def _non_empty(item: InputItem, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise item.error(f"field {key!r} must be a string, got {_json_kind(value)}")
        if not value.strip():
            raise item.error(
                f"field {key!r} is empty" if isinstance(item.value, dict) else "empty text",
                "give some text to predict on",
            )
        return value

    def _relation_text(self, item: InputItem, text: str) -> str:
        entities = [
            item.value.get(key) if isinstance(item.value, dict) else None for key in ("entity1", "entity2")
        ]
        if any(entity is not None for entity in entities):
            if None in entities:
                raise item.error("give both entity1 and entity2 (or neither, with placeholders in the text)")
            return mask_entities(text, entities[0], entities[1], self.placeholders, item)
        found = find_placeholders([text])
        known = ", ".join(self.placeholders) or "@GENE$, @CHEMICAL$, @DRUG$, @DISEASE$"
        if not found:
            raise item.error(
                "a relation model needs the two entities marked, and the text has no placeholder",
                f"replace the entity mentions by placeholders ({known}) or give entity1/entity2 "
                "character spans in a JSON object",
            )
        unknown = [p for p in found if self.placeholders and p not in self.placeholders]
        if unknown:
            raise item.error(
                f"placeholder(s) {', '.join(unknown)} were never seen by this model",
                f"use the ones it was trained with: {known}",
            )
        return text

    # ------------------------------------------------------------------------------------------ model

    def _scores(self, chunk: Sequence[_Prepared]) -> list[np.ndarray]:
        examples = [example for entry in chunk for example in entry.task_input.examples]
        features = self.task.featurize(examples, self.tokenizer, self.max_length)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        outputs = predict_outputs(self.model, features, self.task.head, pad_id, self.recipe)
        per_example = self.task.example_scores(examples, features, outputs)
        result, cursor = [], 0
        for entry in chunk:  # an input's examples (a document's sentences) back into one array
            count = len(entry.task_input.examples)
            result.append(self.task.input_scores(per_example[cursor : cursor + count]))
            cursor += count
        return result

    def _row(self, entry: _Prepared, scores: np.ndarray, threshold: float) -> Row:
        row: Row = {} if entry.row_id is None else {"id": entry.row_id}
        row.update(self.task.prediction_row(entry.task_input, scores, threshold, self.entity_type))
        return row


def entity_type_of(card: ModelCard) -> str:
    """The label of a model's untyped entity tags: its registry dataset's entity type, else ENTITY."""
    if card.own_files:
        return DEFAULT_ENTITY_TYPE
    return DATASET_ENTITY_TYPES.get(card.dataset or "", DEFAULT_ENTITY_TYPE)


def choose_backend(folder: Path, card: ModelCard, backend: str, device: str) -> str:
    """`torch` or `onnx` for a model folder (see `Predictor.from_folder`)."""
    from biotune.onnx_model import ONNX_FILE, onnx_available, require_onnxruntime

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    # the file name is biotune's own, never read from the (untrusted) card
    exported = card.onnx is not None and (folder / ONNX_FILE).is_file()
    if backend == "torch" or (backend == "auto" and not exported):
        return "torch"
    if backend == "onnx":
        require_onnxruntime("--backend onnx", ("onnxruntime",))
        if not exported:
            raise ConfigError(
                f"{folder}: no ONNX model here; write one with `biotune export RUN --to DIR --format onnx`"
            )
    elif not onnx_available():
        warnings.warn(
            f"{folder} holds model.onnx but onnxruntime is not installed, so it runs with torch",
            stacklevel=3,
        )
        return "torch"
    if device not in ("auto", "cpu"):
        raise ConfigError(
            f"the ONNX backend runs on the CPU, not {device!r}: pass --backend torch to use {device}"
        )
    return "onnx"


def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, int | float) or not 0.0 < threshold < 1.0 or math.isnan(threshold):
        raise ConfigError(f"the threshold is a probability strictly between 0 and 1, got {threshold!r}")
    return float(threshold)


def write_rows(rows: Iterator[Row] | Sequence[Row], handle: Any) -> int:
    """JSONL, unicode kept as is; returns the number of rows written."""
    count = 0
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
