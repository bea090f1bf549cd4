"""Raw text -> words with character offsets, and words -> sentences, the way the BLURB files were tokenized.

Words: the rule of BERT's basic tokenizer (and of the PTB-style tokenization behind the BLURB NER files):
split on whitespace, and make every punctuation character a word of its own (`GSK-3beta` -> `GSK`, `-`,
`3beta`; `(APC)` -> `(`, `APC`, `)`). A token-classification model was trained on words cut this way, so
predicting on words cut the same way gives it the units it knows, and each word keeps its [start, end)
offsets into the input, so an entity made of words maps back to the exact surface text.

Punctuation is what BERT calls punctuation: every ASCII non-alphanumeric printable character (so `$`, `+`,
`<`, `=`, `>`, `^`, `` ` ``, `|`, `~` too) and every Unicode character of a `P*` category; other symbols
(`±`, `°`, `µ`) stay inside their word, as in BERT. Whitespace is what Python's `str.isspace` says; this is
the one place it differs from the `tokenizers` library's `BertPreTokenizer` (which this module is tested
against): the information separators U+001C..U+001F are whitespace here and word characters there.

Sentences: the BLURB token-level files hold one sentence per block, so a document is cut into sentences
before tagging: after a `.`, `!` or `?` word followed by a word that starts with an upper-case letter,
and wherever the text breaks a line. A sentence too long for the model is still whole: the token task
splits it into overlapping windows.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

SENTENCE_END = frozenset(".!?")
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # what str.splitlines breaks on


@dataclass(frozen=True)
class Word:
    """One word of a text: `text == source[start:end]`."""

    text: str
    start: int
    end: int


@lru_cache(maxsize=4096)
def is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def split_words(text: str) -> list[Word]:
    """The words of `text` in order; together they cover every non-whitespace character exactly once."""
    words: list[Word] = []
    start: int | None = None
    for index, char in enumerate(text):
        if char.isspace() or is_punctuation(char):
            if start is not None:
                words.append(Word(text[start:index], start, index))
                start = None
            if not char.isspace():
                words.append(Word(char, index, index + 1))
        elif start is None:
            start = index
    if start is not None:
        words.append(Word(text[start:], start, len(text)))
    return words


def split_sentences(text: str, words: list[Word]) -> list[tuple[int, int]]:
    """Sentences as [first word, end word) ranges over `words` (from `split_words(text)`); never empty."""
    sentences: list[tuple[int, int]] = []
    first = 0
    for index in range(1, len(words)):
        previous, word = words[index - 1], words[index]
        sentence_end = previous.text in SENTENCE_END and word.text[0].isupper()
        line_break = any(char in LINE_BREAKS for char in text[previous.end : word.start])
        if sentence_end or line_break:
            sentences.append((first, index))
            first = index
    if words:
        sentences.append((first, len(words)))
    return sentences
