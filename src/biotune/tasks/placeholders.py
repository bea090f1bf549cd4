"""RE entity placeholders (`@GENE$`, `@CHEMICAL$`, `@DRUG$`, `@DISEASE$`, `@CHEM-GENE$`, `@DRUG-DRUG$`).

BLURB's RE files replace each entity mention with a placeholder. A WordPiece vocabulary splits `@GENE$`
into `@`, `gene`, `$`: the marker then looks like the word "gene" between two symbols, and nothing marks
where one entity ends. The default (`TaskOptions.placeholders_as_tokens=True`) adds each placeholder the
tokenizer would split as one special token: the entity marker stays intact and position-addressable
(Gu et al. score entity markers far above raw mention text). The new embedding rows are initialised from
the mean of the pieces the placeholder used to split into (see `placeholder_pieces`, used by the model
code), so nothing starts random. With the option off, texts are tokenized as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase

PLACEHOLDER_PATTERN = re.compile(r"@[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*\$")


def find_placeholders(texts: Iterable[str]) -> list[str]:
    """The distinct placeholders in the texts, sorted."""
    found: set[str] = set()
    for text in texts:
        found.update(PLACEHOLDER_PATTERN.findall(text))
    return sorted(found)


def is_single_token(tokenizer: PreTrainedTokenizerBase, text: str) -> bool:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1


def placeholder_pieces(
    tokenizer: PreTrainedTokenizerBase, placeholders: Iterable[str]
) -> dict[str, list[int]]:
    """Ids each placeholder splits into now; call before `add_placeholder_tokens` to initialise new rows."""
    return {
        placeholder: tokenizer(placeholder, add_special_tokens=False)["input_ids"]
        for placeholder in placeholders
        if not is_single_token(tokenizer, placeholder)
    }


def add_placeholder_tokens(tokenizer: PreTrainedTokenizerBase, placeholders: Iterable[str]) -> list[str]:
    """Add as special tokens the placeholders the tokenizer would split; return the ones added.

    Special tokens are matched verbatim before normalisation, so an uncased tokenizer does not lowercase
    them and they never merge with neighbouring characters. The caller resizes the model's embeddings.
    """
    to_add = [p for p in dict.fromkeys(placeholders) if not is_single_token(tokenizer, p)]
    if to_add:
        tokenizer.add_tokens(to_add, special_tokens=True)
    return to_add
