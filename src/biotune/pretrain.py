"""Continued masked-language-model pretraining (domain-adaptive pretraining, Gururangan et al. 2020).

`pretrain(PretrainConfig(...))` reads the corpora, packs documents into sequences of `max_length` tokens
(words never cut in two; documents separated by the separator token), and trains the model's MLM head and
encoder with whole-word masking, AdamW and a linear warmup then linear decay. Every `save_every` steps it
writes a checkpoint that a re-run resumes from; the data order, the masks and the dropout draws are
functions of (seed, step), so a resumed run is the uninterrupted one. Each `eval_every` steps it measures the
MLM loss and masked-token accuracy on held-out documents with masks fixed once, so the numbers compare.

Whole-word masking is written here rather than taken from transformers: its
`DataCollatorForLanguageModeling(whole_word_mask=True)` finds words from character offsets, which packing
across documents breaks, and it turns the 10% random / 10% unchanged replacements off. This module keeps
BERT's 80/10/10 and knows each token's word from the fast tokenizer's word ids.

With `extend_vocabulary` N, the N most frequent training-corpus words that the tokenizer splits into 3 or
more pieces become whole tokens before any packing (biotune.vocabulary), each new embedding row the mean of
its pieces; sub-tokens per word before and after are measured on the BLURB dev text (the held-out documents
when no BLURB dev split is found) and written to the summary and the card. The words are a function of the
corpus and the base tokenizer, which every run (a resumed one too) starts from, so a resumed run extends the
vocabulary exactly as the interrupted one did, and the checkpoint's fingerprint holds the words.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM, PreTrainedTokenizerBase

from biotune.data.examples import Example
from biotune.device import resolve_device
from biotune.errors import ConfigError, DataError
from biotune.models import FP32, load_tokenizer, model_load_error, resolve_model_path
from biotune.textsplit import split_sentences, split_words
from biotune.vocabulary import (
    MIN_PIECES,
    Fragmentation,
    FragmentedWord,
    add_words,
    frequent_fragmented_words,
    init_new_rows,
    require_wordpiece,
)

log = logging.getLogger(__name__)

BLURB_TRAIN = "blurb-train"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
PROGRESS_FILE = "progress.jsonl"
SUMMARY_FILE = "pretrain.json"
# Train text that shares a run of this many normalised words with any dev/test text is dropped: an exact
# sentence match would miss the same sentence split, tokenized or entity-masked differently (GPT-3's
# decontamination uses 13-grams; 8 is stricter).
OVERLAP_WORDS = 8
PLACEHOLDER = re.compile(r"@[A-Za-z_-]+\$")
WORD = re.compile(r"[0-9a-z]+")
NOT_MASKED = -100


@dataclass
class PretrainConfig:
    model: str
    corpus: list[str]
    output: Path
    data_dir: Path | None = None
    max_length: int = 128
    tokens_per_batch: int = 4096
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    epochs: int = 1
    max_steps: int | None = None
    max_tokens: int | None = None
    save_every: int = 500
    eval_every: int | None = None  # default: save_every
    heldout_fraction: float = 0.02
    heldout_max_sequences: int = 256
    mlm_probability: float = 0.15
    seed: int = 0
    device: str = "auto"
    stop_at_step: int | None = None  # end this invocation there (checkpointed); the schedule is unchanged
    extend_vocabulary: int = 0  # add the N most frequent corpus words split into 3+ pieces as tokens; 0: off

    def check(self) -> None:
        if not self.corpus:
            raise ConfigError("no corpus given: pass --corpus FILE (text or .jsonl) or --corpus blurb-train")
        if self.max_length < 8:
            raise ConfigError(f"--max-length {self.max_length} is too short; use 8 or more (128 is usual)")
        if self.tokens_per_batch < self.max_length:
            raise ConfigError(
                f"--tokens-per-batch {self.tokens_per_batch} is below --max-length {self.max_length}; "
                "a batch holds at least one sequence"
            )
        for name in ("max_steps", "max_tokens", "save_every", "eval_every", "epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be 1 or more, not {value}")
        if self.extend_vocabulary < 0:
            raise ConfigError(
                f"--extend-vocabulary must be 0 (off) or the number of words to add, "
                f"not {self.extend_vocabulary}"
            )
        if not 0 < self.mlm_probability < 1 or not 0 < self.heldout_fraction < 1:
            raise ConfigError("the masking probability and the held-out fraction must lie between 0 and 1")

    def fingerprint(self) -> dict[str, Any]:
        """What determines the result: a checkpoint made under other values cannot be resumed."""
        values = asdict(self)
        for free in ("output", "save_every", "eval_every", "stop_at_step", "device", "data_dir"):
            values.pop(free)
        if not self.extend_vocabulary:
            values.pop("extend_vocabulary")  # off: checkpoints written before the option existed still resume
        values["model"] = resolve_model_path(self.model)
        return values


# ---------------------------------------------------------------------------------------------- corpora


@dataclass
class SourceReport:
    documents: int = 0
    duplicates: int = 0
    dropped_dev_test: int = 0  # BLURB train sentences dropped for overlapping a dev/test text
    tokens: int = 0


@dataclass
class Corpus:
    documents: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the source of each document
    report: dict[str, SourceReport] = field(default_factory=dict)


def normalised_words(text: str) -> list[str]:
    """Lower-cased alphanumeric runs: the BLURB files' tokenized words and raw text give the same list."""
    return WORD.findall(text.lower())


def _ngrams(words: Sequence[str]) -> Iterable[str]:
    for start in range(len(words) - OVERLAP_WORDS + 1):
        yield " ".join(words[start : start + OVERLAP_WORDS])


# The text-bearing fields of the example records (biotune.data.examples), read by name so that any
# record holding them counts: a tagged sentence's words, a document's sentences, pair and QA texts.
TEXT_FIELDS = ("words", "sentences", "text_a", "text_b", "question", "context")


def example_texts(example: Example) -> list[str]:
    """The natural-language texts of an example (a document's sentences one by one)."""
    texts: list[str] = []
    for name in TEXT_FIELDS:
        value = getattr(example, name, None)
        if name == "words" and value is not None:
            texts.append(" ".join(value))
        elif isinstance(value, tuple):
            texts.extend(value)
        elif isinstance(value, str):
            texts.append(value)
    if not texts and isinstance(getattr(example, "text", None), str):  # RE text (entities masked)
        texts.append(example.text)  # type: ignore[union-attr]
    return texts


class HeldOutText:
    """Every BLURB dev/test text, as its word 8-grams (and, when shorter, as the whole word sequence)."""

    def __init__(self) -> None:
        self.ngrams: set[str] = set()
        self.short: set[str] = set()

    def add(self, text: str) -> None:
        # RE texts mask their entities (@GENE$): each stretch between the markers is real text
        for segment in PLACEHOLDER.split(text):
            words = normalised_words(segment)
            if len(words) >= OVERLAP_WORDS:
                self.ngrams.update(_ngrams(words))
            elif words and segment.strip() == text.strip():
                self.short.add(" ".join(words))

    def overlaps(self, text: str) -> bool:
        words = normalised_words(text)
        if len(words) < OVERLAP_WORDS:
            return " ".join(words) in self.short
        return any(gram in self.ngrams for gram in _ngrams(words))


def sentences_of(text: str) -> list[str]:
    words = split_words(text)
    return [text[words[a].start : words[b - 1].end] for a, b in split_sentences(text, words)]


def blurb_train_documents(data_dir: Path | None) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each BLURB dataset's train text (documents), less every sentence that overlaps any dev/test text.

    Sentences with entity markers (RE's @GENE$) are left out: that is not text a language model should
    learn to write. RE dev/test texts still count for the exclusion.
    """
    from biotune.data.loading import load_dataset
    from biotune.data.registry import all_specs

    loaded = [(spec, load_dataset(spec, data_dir, allow_missing=True)) for spec in all_specs()]
    # an absent dev/test file could hold any train sentence: without it the exclusion cannot be checked
    absent = [str(path) for _, splits in loaded for split, path in splits.missing.items() if split != "train"]
    if absent:
        raise ConfigError(
            f"{BLURB_TRAIN} needs every BLURB dev and test file to keep their text out, and these are "
            f"missing: {', '.join(absent)}; run `biotune data fetch` (or give --data-dir)"
        )
    held_out = HeldOutText()
    for _, splits in loaded:
        for example in [*splits.dev, *splits.test]:
            for text in example_texts(example):
                held_out.add(text)
    documents: dict[str, list[str]] = {}
    dropped: dict[str, int] = {}
    for spec, splits in loaded:
        if "train" in splits.missing:
            log.warning(
                "%s: the train file %s is missing; its text is left out", spec.name, splits.missing["train"]
            )
        if "train" in splits.missing:
            continue
        name = f"{BLURB_TRAIN}:{spec.name}"
        documents[name], dropped[name] = [], 0
        for example in splits.train:
            for text in example_texts(example):
                kept = []
                for sentence in sentences_of(text):
                    if PLACEHOLDER.search(sentence):
                        continue  # RE: entities replaced by markers, not text a model should learn to write
                    if held_out.overlaps(sentence):
                        dropped[name] += 1
                    else:
                        kept.append(sentence)
                if kept:
                    documents[name].append(" ".join(kept))
    return documents, dropped


def blurb_dev_texts(data_dir: Path | None) -> tuple[dict[str, list[str]], list[str]]:
    """Each BLURB dataset's distinct dev texts (RE entity markers taken out), and the datasets without a dev
    file. With no data home given and none found, every dataset is absent; a --data-dir that is not a folder
    is an error."""
    from biotune.data.loading import load_dataset
    from biotune.data.paths import resolve_data_dir
    from biotune.data.registry import all_specs

    try:
        home = resolve_data_dir(data_dir)
    except ConfigError:
        if data_dir is not None:
            raise
        return {}, [spec.name for spec in all_specs()]
    texts: dict[str, list[str]] = {}
    absent: list[str] = []
    for spec in all_specs():
        splits = load_dataset(spec, home, splits=("dev",), allow_missing=True)
        if "dev" in splits.missing:
            absent.append(spec.name)
            continue
        found = (PLACEHOLDER.sub(" ", text).strip() for e in splits.dev for text in example_texts(e))
        texts[spec.name] = list(dict.fromkeys(text for text in found if text))
    return texts, absent


def _read_text_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_jsonl(path: Path) -> list[str]:
    documents = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, number, f"not JSON ({exc.msg})", "write one JSON object per line") from exc
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise DataError(
                path, number, "no string field `text`", 'give each line a "text" field: {"text": "..."}'
            )
        if text.strip():
            documents.append(text.strip())
    return documents


def read_corpus(sources: Sequence[str], data_dir: Path | None = None) -> Corpus:
    """Documents from each source, deduplicated (on their normalised words) across all sources."""
    corpus = Corpus()
    seen: set[str] = set()
    for source in sources:
        if source == BLURB_TRAIN:
            per_dataset, dropped = blurb_train_documents(data_dir)
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise DataError(
                    path, None, "no such corpus file", f"give a text file, a .jsonl file or {BLURB_TRAIN}"
                )
            read = _read_jsonl if path.suffix.lower() == ".jsonl" else _read_text_file
            per_dataset, dropped = {str(path): read(path)}, {}
        for name, documents in per_dataset.items():
            report = corpus.report.setdefault(name, SourceReport())
            report.dropped_dev_test += dropped.get(name, 0)
            for document in documents:
                key = hashlib.sha1(" ".join(normalised_words(document)).encode()).hexdigest()
                if key in seen:
                    report.duplicates += 1
                    continue
                seen.add(key)
                report.documents += 1
                corpus.documents.append(document)
                corpus.sources.append(name)
    if not corpus.documents:
        raise ConfigError(f"the corpus ({', '.join(sources)}) holds no documents")
    return corpus


# ---------------------------------------------------------------------------------------------- packing


@dataclass
class Packed:
    """Sequences of token ids with each token's word number in its sequence (-1: special, never masked)."""

    input_ids: list[list[int]]
    word_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)


def _boundary_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None or tokenizer.mask_token_id is None:
        raise ConfigError("the model's tokenizer lacks a start, separator or [MASK] token; MLM needs them")
    return start, end


def pack(
    documents: Sequence[str],
    sources: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    report: dict[str, SourceReport] | None = None,
) -> Packed:
    """[start] words of one or more documents (separator between documents) [end], at most max_length.

    A word goes whole into one sequence (one longer than a sequence is cut), so whole-word masking sees
    whole words.
    """
    start, end = _boundary_tokens(tokenizer)
    capacity = max_length - 2
    packed = Packed([], [])
    ids: list[int] = []
    words: list[int] = []
    next_word = 0

    def flush() -> None:
        nonlocal ids, words, next_word
        if ids and ids[-1] == end and words[-1] == -1:  # no trailing document separator
            ids, words = ids[:-1], words[:-1]
        if ids:
            packed.input_ids.append([start, *ids, end])
            packed.word_ids.append([-1, *words, -1])
        ids, words, next_word = [], [], 0

    encoded = tokenizer(list(documents), add_special_tokens=False)
    for index, source in enumerate(sources):
        token_ids = encoded["input_ids"][index]
        if report is not None:
            report[source].tokens += len(token_ids)
        pieces: dict[int, list[int]] = {}
        for token, word in zip(token_ids, encoded.word_ids(index), strict=True):
            pieces.setdefault(word if word is not None else -len(pieces) - 1, []).append(token)
        for word_tokens in pieces.values():
            word_tokens = word_tokens[:capacity]
            if len(ids) + len(word_tokens) > capacity:
                flush()
            ids.extend(word_tokens)
            words.extend([next_word] * len(word_tokens))
            next_word += 1
        if ids and len(ids) < capacity:
            ids.append(end)
            words.append(-1)
    flush()
    return packed


# ---------------------------------------------------------------------------------------------- masking


def whole_word_mask(
    input_ids: torch.Tensor,
    word_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's whole-word masking: in each sequence round(15%) of its words (at least one) are chosen; every
    token of a chosen word is predicted, and the word is replaced by [MASK] (80%), by random tokens (10%)
    or left unchanged (10%). Returns (inputs, labels); labels are -100 where nothing is predicted.
    """
    inputs = input_ids.clone()
    labels = torch.full_like(input_ids, NOT_MASKED)
    for row in range(input_ids.shape[0]):
        words = word_ids[row]
        count = int(words.max().item()) + 1
        if count <= 0:
            continue
        chosen = torch.randperm(count, generator=generator)[: max(1, round(probability * count))]
        draw = torch.rand(len(chosen), generator=generator)
        action = torch.zeros(count, dtype=torch.long)  # 0 keep out, 1 [MASK], 2 random, 3 unchanged
        action[chosen] = torch.where(draw < 0.8, 1, torch.where(draw < 0.9, 2, 3))
        token_action = torch.where(words >= 0, action[words.clamp(min=0)], 0)
        predicted = token_action > 0
        labels[row, predicted] = input_ids[row, predicted]
        inputs[row, token_action == 1] = mask_token_id
        random_positions = token_action == 2
        inputs[row, random_positions] = torch.randint(
            vocab_size, (int(random_positions.sum()),), generator=generator
        )
    return inputs, labels


def collate(
    packed: Packed,
    indices: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    generator: torch.Generator,
    probability: float,
) -> dict[str, torch.Tensor]:
    width = max(len(packed.input_ids[i]) for i in indices)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(indices), width), pad, dtype=torch.long)
    words = torch.full((len(indices), width), -1, dtype=torch.long)
    attention = torch.zeros((len(indices), width), dtype=torch.long)
    for row, index in enumerate(indices):
        length = len(packed.input_ids[index])
        ids[row, :length] = torch.tensor(packed.input_ids[index])
        words[row, :length] = torch.tensor(packed.word_ids[index])
        attention[row, :length] = 1
    inputs, labels = whole_word_mask(
        ids, words, tokenizer.mask_token_id, len(tokenizer), generator, probability
    )
    return {"input_ids": inputs, "attention_mask": attention, "labels": labels}


def _generator(*parts: int) -> torch.Generator:
    # one independent stream per (purpose, seed, step): a resumed run draws what the uninterrupted one drew
    return torch.Generator().manual_seed(int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16))


# ---------------------------------------------------------------------------------------------- vocabulary


HELDOUT_SOURCE = "held-out documents"


@dataclass
class VocabularyExtension:
    words: list[FragmentedWord]
    pieces: dict[str, list[int]]  # each added word's old piece ids: its new rows start as their mean
    report: dict[str, Any]

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(w.word for w in self.words).encode()).hexdigest()


def extend_tokenizer(
    tokenizer: PreTrainedTokenizerBase,
    config: PretrainConfig,
    train_documents: Sequence[str],
    heldout_documents: Sequence[str],
) -> VocabularyExtension:
    """Add config.extend_vocabulary whole-word tokens chosen on the training documents; measure sub-tokens
    per word before and after on the BLURB dev text (else on the held-out documents, never used to choose)."""
    require_wordpiece(tokenizer, config.model)
    words = frequent_fragmented_words(train_documents, tokenizer, config.extend_vocabulary)
    if len(words) < config.extend_vocabulary:
        log.warning(
            "--extend-vocabulary %d: the corpus holds only %d words split into %d or more pieces; "
            "added those",
            config.extend_vocabulary,
            len(words),
            MIN_PIECES,
        )
    dev, absent = blurb_dev_texts(config.data_dir)
    if dev:
        measured_on = "the BLURB dev splits"
        if absent:
            found = f"{len(dev)} of {len(dev) + len(absent)}"
            measured_on += f" of {found} datasets (absent: {', '.join(absent)})"
        texts: dict[str, Sequence[str]] = dev
    else:
        measured_on = (
            f"the {len(heldout_documents)} held-out corpus documents: no BLURB dev split was found "
            "(give --data-dir, or run `biotune data fetch`, to measure on the BLURB dev text)"
        )
        texts = {HELDOUT_SOURCE: heldout_documents}
    fragmentation = Fragmentation.before(texts, tokenizer)
    pieces = add_words(tokenizer, words)
    fragmentation.measure_after(tokenizer)
    report = {
        "requested": config.extend_vocabulary,
        "added": len(words),
        "min_pieces": MIN_PIECES,
        "measured_on": measured_on,
        "fragmentation": fragmentation.report(),
        "words": [{"word": w.word, "count": w.count, "pieces": list(w.pieces)} for w in words],
    }
    return VocabularyExtension(words, pieces, report)


# ---------------------------------------------------------------------------------------------- model


@dataclass
class MlmModel:
    model: nn.Module
    head_note: str  # for the card: reused or built


def load_mlm_model(name: str) -> MlmModel:
    """The model with its MLM head; a BERT-style model without one gets a fresh head (transform + decoder
    tied to the input embeddings), which transformers initialises; an ELECTRA discriminator is refused."""
    path = resolve_model_path(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        architectures = config.architectures or []
        if config.model_type == "electra" and "ElectraForMaskedLM" not in architectures:
            raise ConfigError(
                f"model {name!r} is an ELECTRA discriminator, which has no MLM head (it was trained to "
                "tell replaced tokens, not to predict them); continue pretraining its generator "
                "(an ElectraForMaskedLM checkpoint) or a BERT-style model instead"
            )
        model, info = AutoModelForMaskedLM.from_pretrained(
            path, trust_remote_code=False, output_loading_info=True, **FP32
        )
    except (OSError, ValueError) as exc:
        raise model_load_error("model", name, exc) from exc
    output = model.get_output_embeddings()
    base_prefix = model.base_model_prefix + "."
    missing_head = [key for key in info["missing_keys"] if not key.startswith(base_prefix)]
    if missing_head:
        model.tie_weights()
        if output is None or output.weight is not model.get_input_embeddings().weight:
            raise ConfigError(
                f"model {name!r}: the new MLM decoder could not be tied to the input embeddings"
            )
        note = (
            f"{name} shipped without an MLM head; one was built the standard way ({type(model).__name__}: "
            "dense + activation + LayerNorm transform, decoder tied to the input embeddings, new bias), "
            "initialised by transformers and trained here."
        )
    else:
        note = f"{name} shipped with its MLM head ({type(model).__name__}); it was reused."
    return MlmModel(model, note)


# ---------------------------------------------------------------------------------------------- training


@dataclass
class PretrainResult:
    output: Path
    steps: int
    tokens: int
    history: list[dict[str, Any]]
    corpus: dict[str, dict[str, int]]
    finished: bool
    vocabulary: dict[str, Any] | None = None  # what --extend-vocabulary added and measured


def evaluate(
    model: nn.Module, batches: list[dict[str, torch.Tensor]], device: torch.device
) -> tuple[float, float]:
    """Mean MLM loss per masked token and masked-token accuracy."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for batch in batches:
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            predicted = batch["labels"] != NOT_MASKED
            target = batch["labels"][predicted]
            chosen = logits[predicted]
            loss_sum += nn.functional.cross_entropy(chosen.float(), target, reduction="sum").item()
            correct += int((chosen.argmax(-1) == target).sum())
            count += int(predicted.sum())
    model.train()
    return loss_sum / max(count, 1), correct / max(count, 1)


def _optimizer(model: nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(
            parameter
        )
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )


def _corpus_digest(corpus: Corpus) -> str:
    digest = hashlib.sha256()
    for document in corpus.documents:
        digest.update(document.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def pretrain(
    config: PretrainConfig, on_progress: Callable[[dict[str, Any]], None] | None = None
) -> PretrainResult:
    """Run (or resume) continued MLM pretraining and write a Hugging Face model folder to config.output."""
    from transformers import get_linear_schedule_with_warmup

    config.check()
    output = Path(config.output)
    device = resolve_device(config.device)
    tokenizer = load_tokenizer(config.model)
    corpus = read_corpus(config.corpus, config.data_dir)

    order = torch.randperm(len(corpus.documents), generator=_generator(config.seed, 0, -1)).tolist()
    n_heldout = min(max(1, round(config.heldout_fraction * len(order))), len(order) - 1)
    if n_heldout < 1:
        raise ConfigError("the corpus needs at least 2 documents (one is held out to measure the loss)")
    heldout_ids, train_ids = sorted(order[:n_heldout]), sorted(order[n_heldout:])
    extension = None
    if config.extend_vocabulary:  # before packing: the sequences hold the added tokens
        extension = extend_tokenizer(
            tokenizer,
            config,
            [corpus.documents[i] for i in train_ids],
            [corpus.documents[i] for i in heldout_ids],
        )
    train = pack(
        [corpus.documents[i] for i in train_ids],
        [corpus.sources[i] for i in train_ids],
        tokenizer,
        config.max_length,
        corpus.report,
    )
    heldout = pack(
        [corpus.documents[i] for i in heldout_ids],
        [corpus.sources[i] for i in heldout_ids],
        tokenizer,
        config.max_length,
        corpus.report,
    )
    heldout = Packed(
        heldout.input_ids[: config.heldout_max_sequences], heldout.word_ids[: config.heldout_max_sequences]
    )
    per_batch = config.tokens_per_batch // config.max_length
    steps_per_epoch = math.ceil(len(train) / per_batch)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None or config.max_tokens is not None:
        limits = [config.max_steps] if config.max_steps is not None else []
        if config.max_tokens is not None:
            limits.append(math.ceil(config.max_tokens / config.tokens_per_batch))
        total_steps = min(limits)
    heldout_generator = _generator(config.seed, 1, -1)  # masks drawn once: every evaluation sees the same
    heldout_batches = [
        collate(
            heldout,
            range(i, min(i + per_batch, len(heldout))),
            tokenizer,
            heldout_generator,
            config.mlm_probability,
        )
        for i in range(0, len(heldout), per_batch)
    ]

    torch.manual_seed(config.seed)  # a new MLM head is drawn from the seed: a re-run builds the same one
    loaded = load_mlm_model(config.model)
    if extension is not None:
        init_new_rows(loaded.model, tokenizer, extension.pieces)
    model = loaded.model.to(device)
    model.train()
    optimizer = _optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * total_steps), total_steps
    )
    fingerprint = {**config.fingerprint(), "corpus_sha256": _corpus_digest(corpus)}
    if extension is not None:
        fingerprint["added_words_sha256"] = extension.fingerprint()
    step, tokens_seen, history = 0, 0, []
    checkpoint = output / CHECKPOINT_DIR / CHECKPOINT_FILE
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        saved = json.loads(state["fingerprint"])
        if saved != fingerprint:
            changed = sorted(key for key in fingerprint if saved.get(key) != fingerprint[key])
            raise ConfigError(
                f"{output}: holds a checkpoint of a different run (changed: {', '.join(changed)}); "
                "give another --output, or delete that folder to start over"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, tokens_seen = int(state["step"]), int(state["tokens"])
        history = json.loads(state["history"])
        log.info("resuming %s at step %d", output, step)
    else:
        loss, accuracy = evaluate(model, heldout_batches, device)
        history.append({"step": 0, "tokens": 0, "heldout_loss": loss, "heldout_accuracy": accuracy})

    def save_checkpoint() -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        partial = checkpoint.with_suffix(".partial")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "tokens": tokens_seen,
                "history": json.dumps(history),
                "fingerprint": json.dumps(fingerprint),
            },
            partial,
        )
        partial.replace(checkpoint)

    eval_every = config.eval_every or config.save_every
    interval_start, interval_tokens, interval_losses = time.perf_counter(), 0, []

    def finished() -> bool:
        return step >= total_steps or (config.max_tokens is not None and tokens_seen >= config.max_tokens)

    while not finished() and (config.stop_at_step is None or step < config.stop_at_step):
        epoch, position = divmod(step, steps_per_epoch)
        epoch_order = torch.randperm(len(train), generator=_generator(config.seed, 2, epoch)).tolist()
        indices = epoch_order[position * per_batch : (position + 1) * per_batch]
        batch = collate(train, indices, tokenizer, _generator(config.seed, 3, step), config.mlm_probability)
        torch.manual_seed(int(_generator(config.seed, 4, step).initial_seed()))  # this step's dropout
        batch = {key: value.to(device) for key, value in batch.items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        batch_tokens = int(batch["attention_mask"].sum())
        tokens_seen += batch_tokens
        interval_tokens += batch_tokens
        interval_losses.append(loss.item())
        if step % eval_every == 0 or finished():
            seconds = time.perf_counter() - interval_start
            heldout_loss, heldout_accuracy = evaluate(model, heldout_batches, device)
            record = {
                "step": step,
                "tokens": tokens_seen,
                "train_loss": sum(interval_losses) / len(interval_losses),
                "heldout_loss": heldout_loss,
                "heldout_accuracy": heldout_accuracy,
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_second": interval_tokens / max(seconds, 1e-9),
            }
            history.append(record)
            log.info("pretrain %s", record)
            if on_progress is not None:
                on_progress(record)
            interval_start, interval_tokens, interval_losses = time.perf_counter(), 0, []
        if step % config.save_every == 0 or finished() or step == config.stop_at_step:
            save_checkpoint()

    output.mkdir(parents=True, exist_ok=True)
    (output / PROGRESS_FILE).write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    corpus_report = {name: asdict(report) for name, report in corpus.report.items()}
    done = finished()
    if done:
        model.save_pretrained(output)
        tokenizer.save_pretrained(output)
        summary = {
            "model": config.model,
            "head": loaded.head_note,
            "steps": step,
            "tokens": tokens_seen,
            "corpus": corpus_report,
            "train_sequences": len(train),
            "heldout_documents": n_heldout,
            "heldout_sequences": len(heldout),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
            "history": history,
            "vocabulary": extension.report if extension is not None else None,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        (output / "README.md").write_text(model_card(summary), encoding="utf-8")
    vocabulary = extension.report if extension is not None else None
    return PretrainResult(output, step, tokens_seen, history, corpus_report, done, vocabulary)


def model_card(summary: dict[str, Any]) -> str:
    first, last = summary["history"][0], summary["history"][-1]
    settings = summary["settings"]
    rows = "\n".join(
        f"| {name} | {r['documents']} | {r['duplicates']} | {r['dropped_dev_test']} | {r['tokens']} |"
        for name, r in summary["corpus"].items()
    )
    return f"""# {summary["model"]}, continued MLM pretraining (biotune pretrain)

Domain-adaptive pretraining (Gururangan et al. 2020) of `{summary["model"]}` with whole-word masking
({settings["mlm_probability"]:.0%} of words; 80% [MASK], 10% random, 10% unchanged), sequences packed to
{settings["max_length"]} tokens, {settings["tokens_per_batch"]} tokens per batch, AdamW (lr
{settings["learning_rate"]}, weight decay {settings["weight_decay"]}), linear warmup
({settings["warmup_ratio"]:.0%}) then linear decay, seed {settings["seed"]}.

MLM head: {summary["head"]}

Trained {summary["steps"]} steps on {summary["tokens"]} tokens. Held-out MLM loss
{first["heldout_loss"]:.3f} -> {last["heldout_loss"]:.3f}, masked-token accuracy
{first["heldout_accuracy"]:.3f} -> {last["heldout_accuracy"]:.3f} ({summary["heldout_documents"]} held-out
documents, fixed masks). Per-interval progress: `{PROGRESS_FILE}`; everything: `{SUMMARY_FILE}`.

| source | documents | duplicates dropped | dev/test-overlapping sentences dropped | tokens |
|---|---|---|---|---|
{rows}

`{BLURB_TRAIN}` is the text of the BLURB train splits only (RE texts left out: their entities are masked);
a train sentence sharing a run of {OVERLAP_WORDS} normalised words (lower-cased alphanumeric runs) with any
BLURB dev or test text, or equal to a shorter one, was dropped. The folder works as `--model` for
`biotune train`.
""" + vocabulary_section(summary.get("vocabulary"))


def vocabulary_section(report: dict[str, Any] | None) -> str:
    """The card's account of --extend-vocabulary: the words added and sub-tokens per word before/after."""
    if report is None:
        return ""
    fragmentation = report["fragmentation"]
    rows = "\n".join(
        f"| {source} | {row['words']} | {row['before']:.3f} | {row['after']:.3f} |"
        for source, row in fragmentation["per_source"].items()
    )
    shown = ", ".join(f"`{w['word']}` ({' '.join(w['pieces'])})" for w in report["words"][:10]) or "none"
    more = f" and {report['added'] - 10} more (all in `{SUMMARY_FILE}`)" if report["added"] > 10 else ""
    return f"""
## Vocabulary

{report["added"]} words added as whole tokens (`--extend-vocabulary {report["requested"]}`): the most
frequent training-corpus words the tokenizer split into {report["min_pieces"]} or more pieces, each new
embedding row (and output bias) initialised to the mean of its pieces', then trained here: {shown}{more}.
They match whole words only (not inside a longer word), after the tokenizer's normalisation.

Sub-tokens per word, measured on {report["measured_on"]}: **{fragmentation["before"]:.3f} before,
{fragmentation["after"]:.3f} after** ({fragmentation["words"]} words).

| text | words | sub-tokens per word before | after |
|---|---|---|---|
{rows}
"""
