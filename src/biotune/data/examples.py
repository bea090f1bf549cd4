"""Typed examples: what readers return and what tasks consume.

Every example keeps an `id` (traceable to the source: a pair id, a PMID, a question id, or
`<file>:<line>` for sentences) and `source`, the `file:line` it was read from, so a
prediction can always be traced back to the line or document it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaggedSentence:
    """NER and PICO: one sentence of words, one tag per word (B/I/O or I-PAR/I-INT/I-OUT/O)."""

    id: str
    words: tuple[str, ...]
    tags: tuple[str, ...]
    source: str
    document: str | None = None  # -DOCSTART- id where the file has one
    # each word on its own line from `source` on (TSV, CoNLL); False: the whole sentence on that line
    # (JSON Lines, CSV)
    word_lines: bool = True


@dataclass(frozen=True)
class LabeledText:
    """Relation extraction (entities already masked, e.g. `@GENE$`) and single-label text classification."""

    id: str
    text: str
    label: str
    source: str


@dataclass(frozen=True)
class ScoredPair:
    """Sentence similarity (BIOSSES): two sentences and a gold score on the 0-4 scale."""

    id: str
    text_a: str
    text_b: str
    score: float
    source: str


@dataclass(frozen=True)
class LabeledDocument:
    """Multi-label document classification (HoC): the abstract's sentences and the set of label indices."""

    id: str
    sentences: tuple[str, ...]
    labels: frozenset[int]
    source: str
    sentence_ids: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True)
class Question:
    """QA as pair classification (PubMedQA, BioASQ): question, context, answer yes/no(/maybe)."""

    id: str
    question: str
    context: str
    label: str
    source: str


Example = TaggedSentence | LabeledText | ScoredPair | LabeledDocument | Question
