"""Vocabulary extension: whole-word tokens for the corpus words a WordPiece vocabulary fragments.

A general-domain vocabulary cuts biomedical terms into many pieces (`hydroxylase` -> `hydro ##xy ##lase`),
which costs sequence length and leaves the model to assemble the term from fragments.
`biotune pretrain --extend-vocabulary N` adds the N most frequent corpus words that the tokenizer splits
into `MIN_PIECES` or more pieces as whole tokens, each new embedding row the mean of its pieces' rows (as
the RE placeholders are, `biotune.tasks.placeholders`), before continued pretraining teaches them.

Words are what the tokenizer itself sees: its normalizer (for an uncased BERT: lower-casing, accent
stripping) then its pre-tokenizer (whitespace, every punctuation mark a word of its own). How an added
word is then matched in running text, as a `tokenizers.AddedToken`:

- `normalized=True`: matched against the normalizer's output, as the word was counted, so the lower-cased
  `hydroxylase` of an uncased tokenizer matches `Hydroxylase` and `HYDROXYLASE` (a cased tokenizer keeps
  the case it counted).
- `single_word=True`: never matched inside a longer word: `hydroxylases`, `xhydroxylase`, `hydroxylase2`
  keep their old pieces. The tokenizers library's word boundary is any character that is not alphanumeric
  or `_`, so the word matches next to punctuation (`hydroxylase-deficient`) as the pre-tokenizer splits;
  the one difference is `_`, where BERT's pre-tokenizer splits and the added word is not matched
  (`hydroxylase_x` keeps its pieces).
- a normal token, not a special one: an added word is text, so it decodes, survives
  `skip_special_tokens`, counts as a word of its own in `word_ids` and is masked like any word in MLM.

Only WordPiece tokenizers (BERT, PubMedBERT, BioBERT, ELECTRA, MiniLM) are supported: a byte-level BPE
pre-tokenizer (RoBERTa, GPT-2) folds the preceding space into the word (`Ġword`), which an added token
matched before pre-tokenization cannot reproduce.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import AddedToken
from tokenizers.models import WordPiece
from torch import nn
from transformers import PreTrainedTokenizerBase

from biotune.errors import ConfigError
from biotune.models import extend_vocabulary

MIN_PIECES = 3
# distinct words tokenized per call while looking for fragmented ones, most frequent first
_CANDIDATE_BATCH = 4096
_TEXT_BATCH = 2048


@dataclass(frozen=True)
class FragmentedWord:
    word: str  # as the normalizer writes it (lower-cased for an uncased tokenizer)
    count: int  # occurrences in the corpus
    pieces: tuple[str, ...]  # what the tokenizer split it into
    piece_ids: tuple[int, ...]


def require_wordpiece(tokenizer: PreTrainedTokenizerBase, model_name: str) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, WordPiece) or backend.pre_tokenizer is None:
        kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
        raise ConfigError(
            f"--extend-vocabulary supports WordPiece tokenizers (BERT-style models), and model "
            f"{model_name!r} uses {kind}; leave --extend-vocabulary at 0 for this model"
        )


def words_of(text: str, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The text's words as the tokenizer sees them: normalized, then pre-tokenized."""
    backend = tokenizer.backend_tokenizer
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def count_words(texts: Iterable[str], tokenizer: PreTrainedTokenizerBase) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words_of(text, tokenizer))
    return counts


def frequent_fragmented_words(
    texts: Iterable[str], tokenizer: PreTrainedTokenizerBase, n: int, min_pieces: int = MIN_PIECES
) -> list[FragmentedWord]:
    """The n most frequent words of the texts that the tokenizer splits into min_pieces or more pieces.

    Most frequent first; equal counts in alphabetical order, so the choice is a function of the corpus.
    Fewer than n when the texts hold fewer such words.
    """
    if n <= 0:
        return []
    ranked = sorted(count_words(texts, tokenizer).items(), key=lambda item: (-item[1], item[0]))
    chosen: list[FragmentedWord] = []
    for start in range(0, len(ranked), _CANDIDATE_BATCH):
        batch = ranked[start : start + _CANDIDATE_BATCH]
        encoded = tokenizer([word for word, _ in batch], add_special_tokens=False)["input_ids"]
        for (word, count), ids in zip(batch, encoded, strict=True):
            if len(ids) >= min_pieces:
                pieces = tuple(tokenizer.convert_ids_to_tokens(ids))
                chosen.append(FragmentedWord(word, count, pieces, tuple(ids)))
                if len(chosen) == n:
                    return chosen
    return chosen


def add_words(tokenizer: PreTrainedTokenizerBase, words: Sequence[FragmentedWord]) -> dict[str, list[int]]:
    """Add each word to the tokenizer as one token (see the module notes on matching); return each word's
    old piece ids, to initialise its new embedding row with `init_new_rows`."""
    tokenizer.add_tokens(
        [AddedToken(w.word, single_word=True, normalized=True, special=False) for w in words],
        special_tokens=False,
    )
    return {w.word: list(w.piece_ids) for w in words}


def init_new_rows(model: nn.Module, tokenizer: PreTrainedTokenizerBase, pieces: dict[str, list[int]]) -> None:
    """Resize the model to the tokenizer; each added token's row is the mean of its pieces' rows.

    The input embeddings by `biotune.models.extend_vocabulary`; an MLM decoder tied to them follows. An
    untied decoder weight and the decoder's output bias get the mean of the pieces' decoder rows and
    biases too, so at the start a new token's logit is exactly the mean of its pieces' logits.
    """
    if not pieces:
        return
    old_rows = model.get_input_embeddings().weight.shape[0]
    extend_vocabulary(model, tokenizer, pieces)
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if get_output is not None else None
    if output is None:
        return
    tied = output.weight is model.get_input_embeddings().weight
    bias = getattr(output, "bias", None)
    with torch.no_grad():
        for token, piece_ids in pieces.items():
            new_id = tokenizer.convert_tokens_to_ids(token)
            if new_id < old_rows or not piece_ids:
                continue
            index = torch.tensor(piece_ids, device=output.weight.device)
            if not tied:
                output.weight[new_id] = output.weight[index].mean(0)
            if bias is not None:
                bias[new_id] = bias[index].mean()


def word_counts(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return [len(words_of(text, tokenizer)) for text in texts]


def token_counts(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), _TEXT_BATCH):
        encoded = tokenizer(list(texts[start : start + _TEXT_BATCH]), add_special_tokens=False)
        counts.extend(len(ids) for ids in encoded["input_ids"])
    return counts


@dataclass
class Fragmentation:
    """Sub-tokens per word of some texts, before and after the vocabulary grew.

    Words are counted by the tokenizer's normalizer and pre-tokenizer, which adding tokens leaves as they
    are, so both ratios divide by the same words. A text found in several sources (BC5CDR-chem and
    -disease share their abstracts) counts once in the total.
    """

    texts: list[str]
    sources: dict[str, list[int]]  # source -> indices of its texts
    words: list[int]
    tokens_before: list[int]
    tokens_after: list[int] | None = None

    @classmethod
    def before(
        cls, texts_by_source: dict[str, Sequence[str]], tokenizer: PreTrainedTokenizerBase
    ) -> Fragmentation:
        index: dict[str, int] = {}
        sources: dict[str, list[int]] = {}
        for source, texts in texts_by_source.items():
            sources[source] = sorted({index.setdefault(text, len(index)) for text in texts})
        texts = list(index)
        return cls(texts, sources, word_counts(texts, tokenizer), token_counts(texts, tokenizer))

    def measure_after(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokens_after = token_counts(self.texts, tokenizer)

    def _row(self, indices: Iterable[int]) -> dict[str, Any]:
        indices = list(indices)
        words = sum(self.words[i] for i in indices)
        row: dict[str, Any] = {"texts": len(indices), "words": words}
        for name, tokens in (("before", self.tokens_before), ("after", self.tokens_after)):
            if tokens is not None:
                total = sum(tokens[i] for i in indices)
                row[f"tokens_{name}"] = total
                row[name] = total / words if words else 0.0
        return row

    def report(self) -> dict[str, Any]:
        """Sub-tokens per word before/after over all texts, and per source."""
        return {
            **self._row(range(len(self.texts))),
            "per_source": {source: self._row(indices) for source, indices in self.sources.items()},
        }
