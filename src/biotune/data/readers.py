"""Readers for every BLURB file format; each returns typed examples that remember `file:line`.

Malformed input raises one DataError naming the file, the 1-based line, the problem and the fix.
No example is ever dropped silently: a line is either part of an example, a header, a
`-DOCSTART-` marker or a blank separator.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterator
from pathlib import Path

from biotune.data.examples import LabeledDocument, LabeledText, Question, ScoredPair, TaggedSentence
from biotune.errors import DataError

DOCSTART = "-DOCSTART-"
HOC_INDEX = re.compile(r"^(?P<doc>.+)_s(?P<sentence>\d+)$")
HOC_LABEL = re.compile(r"^(\d+)_([01])$")
BIOSSES_MAX_SCORE = 4.0
# A data file's line ends; str.splitlines() would also split at \x0b, \x1c, \x85, \u2028 ..., characters
# that may sit inside a text field and would shift every later line number.
LINE_END = re.compile(r"\r\n|\r|\n")


def read_text(path: Path | str) -> str:
    """The file as text; a missing file or bytes that are not UTF-8 become a DataError at the right line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(path, None, "file not found", "check the path") from exc
    except IsADirectoryError as exc:
        raise DataError(path, None, "is a folder, not a data file", "give the file itself") from exc
    except OSError as exc:
        raise DataError(path, None, f"cannot read the file: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(LINE_END.split(raw[: exc.start].decode("utf-8")))
        raise DataError(
            path, line, f"bytes that are not UTF-8 (byte 0x{raw[exc.start]:02x})", "save the file as UTF-8"
        ) from exc
    if "\x00" in text:  # valid UTF-8, but text files never hold NUL: UTF-16 without a BOM, or binary
        line = len(LINE_END.split(text[: text.index("\x00")]))
        raise DataError(
            path,
            line,
            "NUL bytes: the file looks like UTF-16 or binary, not UTF-8 text",
            "save the file as UTF-8 text",
        )
    if text.startswith("\ufeff"):  # a byte-order mark from spreadsheet exports
        text = text[1:]
    return text


def _lines(path: Path | str) -> list[str]:
    lines = LINE_END.split(read_text(path))
    if lines[-1] == "":  # the end of the last line, not a line of its own
        lines.pop()
    return lines


def _require_examples(path: Path | str, examples: list, what: str) -> None:
    if not examples:
        raise DataError(
            path,
            None,
            f"no {what} found (the file is empty or holds only a header)",
            "check that this is the right file",
        )


def _split_row(path: Path | str, number: int, line: str, columns: int, layout: str) -> list[str]:
    fields = line.split("\t")
    if len(fields) != columns:
        problem = f"expected {columns} tab-separated columns ({layout}), found {len(fields)}"
        raise DataError(path, number, problem, "separate columns with single tabs; keep tabs out of the text")
    return fields


def _check_label(path: Path | str, number: int, label: str, labels: Collection[str] | None) -> None:
    if not label:
        raise DataError(path, number, "empty label", "every row needs a label in the last column")
    if labels is not None and label not in labels:
        raise DataError(path, number, f"unknown label {label!r}", f"use one of: {', '.join(sorted(labels))}")


# --- NER and PICO -------------------------------------------------------------------------------


def read_tagged_tsv(path: Path | str, allowed_tags: Collection[str] | None = None) -> list[TaggedSentence]:
    """`token<TAB>tag` per line, a blank line between sentences, optional `-DOCSTART- <id>` lines."""
    allowed = set(allowed_tags) if allowed_tags is not None else None
    stem = Path(path).stem
    sentences: list[TaggedSentence] = []
    document: str | None = None
    words: list[str] = []
    tags: list[str] = []
    first_line = 0

    def close() -> None:
        if words:
            sentences.append(
                TaggedSentence(
                    id=f"{document or stem}:{first_line}",
                    words=tuple(words),
                    tags=tuple(tags),
                    source=f"{path}:{first_line}",
                    document=document,
                )
            )
            words.clear()
            tags.clear()

    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            close()
            continue
        if line.startswith(DOCSTART):
            close()
            document = line[len(DOCSTART) :].strip().strip("()").strip() or None
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(
                path,
                number,
                f"expected 2 tab-separated columns (token, tag), found {len(fields)}",
                "write one `token<TAB>tag` per line and a blank line between sentences",
            )
        word, tag = fields[0], fields[1].strip()
        if not word.strip():
            raise DataError(
                path, number, "empty token", "remove the line or put the word in the first column"
            )
        if not tag:
            raise DataError(path, number, f"empty tag for token {word!r}", "put the tag in the second column")
        if allowed is not None and tag not in allowed:
            raise DataError(path, number, f"unknown tag {tag!r}", f"use one of: {', '.join(sorted(allowed))}")
        if not words:
            first_line = number
        words.append(word)
        tags.append(tag)
    close()
    _require_examples(path, sentences, "sentences")
    return sentences


# --- RE and single-label classification ---------------------------------------------------------


def _is_header(fields: list[str], names: tuple[str, ...], labels: Collection[str] | None) -> bool:
    """A first row is a header when its last column names the label column rather than holding a label."""
    last = fields[-1].strip().lower()
    if labels is not None and fields[-1].strip() in labels:
        return False
    return last in names


def read_labeled_tsv(path: Path | str, labels: Collection[str] | None = None) -> list[LabeledText]:
    """`id<TAB>text<TAB>label` (ChemProt, DDI, own files); GAD's `index sentence label` header is skipped."""
    examples: list[LabeledText] = []
    seen: dict[str, int] = {}
    first_row = True
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = _split_row(path, number, line, 3, "id, text, label")
        if first_row:
            first_row = False
            if _is_header(fields, ("label", "labels"), labels):
                continue
        example_id, text, label = fields[0].strip(), fields[1], fields[2].strip()
        if not example_id:
            raise DataError(path, number, "empty id in the first column", "give every row a unique id")
        if not text.strip():
            raise DataError(
                path, number, "empty text in the second column", "remove the row or fill in the text"
            )
        _check_label(path, number, label, labels)
        if example_id in seen:
            raise DataError(
                path,
                number,
                f"duplicate id {example_id!r} (first on line {seen[example_id]})",
                "give every row a unique id",
            )
        seen[example_id] = number
        examples.append(LabeledText(id=example_id, text=text, label=label, source=f"{path}:{number}"))
    _require_examples(path, examples, "examples")
    return examples


# --- BIOSSES ------------------------------------------------------------------------------------


def _parse_score(path: Path | str, number: int, text: str) -> float:
    try:
        score = float(text)
    except ValueError:
        raise DataError(
            path,
            number,
            f"score {text!r} is not a number",
            f"write the similarity score as a number from 0 to {BIOSSES_MAX_SCORE:g}",
        ) from None
    if not math.isfinite(score) or not 0.0 <= score <= BIOSSES_MAX_SCORE:
        raise DataError(
            path,
            number,
            f"score {text} is outside 0-{BIOSSES_MAX_SCORE:g}",
            f"BIOSSES scores are means of 0-{BIOSSES_MAX_SCORE:g} ratings",
        )
    return score


def read_biosses(path: Path | str) -> list[ScoredPair]:
    """`pair_id<TAB>sent1<TAB>sent2<TAB>score` with a header row."""
    pairs: list[ScoredPair] = []
    seen: dict[str, int] = {}
    first_row = True
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = _split_row(path, number, line, 4, "pair_id, sent1, sent2, score")
        if first_row:
            first_row = False
            if fields[3].strip().lower() == "score":
                continue
        pair_id, text_a, text_b = fields[0].strip(), fields[1], fields[2]
        if not pair_id:
            raise DataError(path, number, "empty pair id", "give every pair a unique id in the first column")
        if not text_a.strip() or not text_b.strip():
            raise DataError(path, number, "empty sentence", "both sentence columns need text")
        score = _parse_score(path, number, fields[3].strip())
        if pair_id in seen:
            raise DataError(
                path,
                number,
                f"duplicate pair id {pair_id!r} (first on line {seen[pair_id]})",
                "give every pair a unique id",
            )
        seen[pair_id] = number
        pairs.append(
            ScoredPair(id=pair_id, text_a=text_a, text_b=text_b, score=score, source=f"{path}:{number}")
        )
    _require_examples(path, pairs, "sentence pairs")
    return pairs


# --- HoC ----------------------------------------------------------------------------------------


def _parse_hoc_labels(path: Path | str, number: int, field: str, num_labels: int | None) -> list[int]:
    """`0_x,1_x,...,9_x` -> indices whose x is 1; the parts must be numbered 0..n-1 in order."""
    parts = field.strip().split(",")
    flags: list[int] = []
    for position, part in enumerate(parts):
        match = HOC_LABEL.match(part.strip())
        if not match or int(match.group(1)) != position:
            raise DataError(
                path,
                number,
                f"bad label field {field!r} at {part!r}",
                f"write labels as 0_x,1_x,...,{len(parts) - 1}_x with x 0 or 1, in index order",
            )
        flags.append(int(match.group(2)))
    if num_labels is not None and len(flags) != num_labels:
        raise DataError(
            path,
            number,
            f"label field has {len(flags)} labels, expected {num_labels}",
            f"write all {num_labels} labels 0_x,...,{num_labels - 1}_x on every row",
        )
    return flags


def _is_hoc_header(fields: list[str]) -> bool:
    return fields[0].strip().lower() == "labels" and fields[-1].strip().lower() == "index"


def read_hoc(path: Path | str, num_labels: int | None = None) -> list[LabeledDocument]:
    """Sentence rows `labels<TAB>sentence<TAB><PMID>_s<i>` grouped into abstracts, labels OR-ed per abstract.

    Abstracts come in order of first appearance, their sentences in index order.
    """
    groups: dict[str, dict] = {}
    expected = num_labels
    first_row = True
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = _split_row(path, number, line, 3, "labels, sentence, index")
        if first_row:
            first_row = False
            if _is_hoc_header(fields):
                continue
        index, sentence = fields[2].strip(), fields[1]
        match = HOC_INDEX.match(index)
        if not match:
            raise DataError(
                path, number, f"bad index {index!r}", "write the index as <PMID>_s<sentence number>"
            )
        if not sentence.strip():
            raise DataError(path, number, "empty sentence", "remove the row or fill in the sentence")
        flags = _parse_hoc_labels(path, number, fields[0], expected)
        expected = len(flags)  # every later row must carry as many labels as the first
        doc_id, position = match.group("doc"), int(match.group("sentence"))
        group = groups.setdefault(doc_id, {"line": number, "sentences": {}, "labels": set()})
        if position in group["sentences"]:
            first = group["sentences"][position][0]
            raise DataError(
                path,
                number,
                f"sentence index {index!r} appears twice (first on line {first})",
                "give each sentence its own index",
            )
        group["sentences"][position] = (number, sentence, index)
        group["labels"].update(i for i, flag in enumerate(flags) if flag)
    documents = []
    for doc_id, group in groups.items():
        ordered = [group["sentences"][k] for k in sorted(group["sentences"])]
        documents.append(
            LabeledDocument(
                id=doc_id,
                sentences=tuple(s for _, s, _ in ordered),
                labels=frozenset(group["labels"]),
                source=f"{path}:{group['line']}",
                sentence_ids=tuple(i for _, _, i in ordered),
            )
        )
    _require_examples(path, documents, "abstracts")
    return documents


def hoc_label_count(path: Path | str) -> int:
    """How many labels the rows of a HoC-style file carry (read_hoc checks that every row agrees)."""
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split("\t")
        if not line.strip() or _is_hoc_header(fields):
            continue
        return len(_parse_hoc_labels(path, number, fields[0], None))
    raise DataError(
        path,
        None,
        "no rows found (the file is empty or holds only a header)",
        "check that this is the right file",
    )


# --- QA -----------------------------------------------------------------------------------------


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


# Strings (no raw newline inside: JSON forbids it), brackets, colons and newlines; the rest is skipped.
_JSON_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\]:\n]')
# Well below the interpreter's recursion limit, at which json.loads gives up without saying where.
JSON_MAX_DEPTH = 500


def _locate_json_problem(text: str) -> tuple[int, str] | None:
    """Line and description of the first duplicate key or over-deep nesting (json.loads names neither line).

    Only called after json.loads failed that way, so the text up to the problem is well-formed JSON.
    """
    open_containers: list[set[str] | None] = []  # the keys seen so far per open object; None per array
    line, previous = 1, ("", 1)
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == "\n":
            line += 1
            continue
        if token in ("{", "["):
            open_containers.append(set() if token == "{" else None)
            if len(open_containers) > JSON_MAX_DEPTH:
                return line, f"JSON nested more than {JSON_MAX_DEPTH} levels deep"
        elif token in ("}", "]"):
            if open_containers:
                open_containers.pop()
        elif token == ":" and previous[0].startswith('"') and open_containers:
            keys, key = open_containers[-1], json.loads(previous[0])
            if keys is not None and key in keys:
                return previous[1], f"key {key!r} appears twice in one object"
            if keys is not None:
                keys.add(key)
        previous = (token, line)
    return None


def _key_lines(text: str, keys: list[str]) -> Iterator[int]:
    """Line of each top-level key, found in file order (json.loads keeps no positions)."""
    position, line = 0, 1
    for key in keys:
        found = text.find(json.dumps(key), position)
        if found < 0:
            yield line
            continue
        line += text.count("\n", position, found)
        position = found
        yield line


def read_pubmedqa(path: Path | str, labels: Collection[str] | None = None) -> list[Question]:
    """PubMedQA JSON: {id: {QUESTION, CONTEXTS, final_decision, ...}}; context is the joined CONTEXTS."""
    # JSON strings cannot hold a raw CR, so this only makes CR and CRLF line ends count as lines below
    text = LINE_END.sub("\n", read_text(path))
    if not text.strip():
        raise DataError(path, None, "the file is empty", "give a PubMedQA JSON file")
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise DataError(
            path,
            exc.lineno,
            f"broken JSON: {exc.msg} (column {exc.colno})",
            "fix the JSON syntax; the file must be one object {id: {...}}",
        ) from None
    except _DuplicateKey as exc:
        line, problem = _locate_json_problem(text) or (None, f"key {exc.key!r} appears twice in one object")
        raise DataError(
            path,
            line,
            problem,
            "give every question (and every field of one question) its own key; "
            "JSON keeps only the last duplicate",
        ) from None
    except RecursionError:
        line, problem = _locate_json_problem(text) or (None, "JSON nested too deeply")
        raise DataError(
            path, line, problem, "a question holds strings and lists of strings; remove the extra brackets"
        ) from None
    if not isinstance(data, dict):
        raise DataError(
            path,
            1,
            f"the top level is a JSON {type(data).__name__}, expected an object",
            "write one object mapping question ids to {QUESTION, CONTEXTS, final_decision}",
        )
    questions = []
    for (question_id, item), number in zip(data.items(), _key_lines(text, list(data)), strict=True):
        if not isinstance(item, dict):
            raise DataError(
                path,
                number,
                f"entry {question_id!r} is not an object",
                "each id must map to {QUESTION, CONTEXTS, final_decision}",
            )
        question, contexts, label = item.get("QUESTION"), item.get("CONTEXTS"), item.get("final_decision")
        if not isinstance(question, str) or not question.strip():
            raise DataError(
                path, number, f"entry {question_id!r} has no QUESTION text", "add a QUESTION string"
            )
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise DataError(
                path,
                number,
                f"entry {question_id!r}: CONTEXTS must be a list of strings",
                "write CONTEXTS as a list of passages",
            )
        if not isinstance(label, str):
            raise DataError(
                path,
                number,
                f"entry {question_id!r} has no final_decision",
                "add final_decision (yes/no/maybe); an unlabeled test file cannot be scored",
            )
        _check_label(path, number, label.strip(), labels)
        questions.append(
            Question(
                id=str(question_id),
                question=question,
                context=" ".join(contexts),
                label=label.strip(),
                source=f"{path}:{number}",
            )
        )
    _require_examples(path, questions, "questions")
    return questions


def read_bioasq(path: Path | str, labels: Collection[str] | None = None) -> list[Question]:
    """`id<TAB>question<TAB>snippets<TAB>yes|no`, no header (a header row is recognised and skipped)."""
    questions: list[Question] = []
    seen: dict[str, int] = {}
    first_row = True
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = _split_row(path, number, line, 4, "id, question, context, label")
        if first_row:
            first_row = False
            if _is_header(fields, ("label", "answer"), labels):
                continue
        question_id, question, context, label = fields[0].strip(), fields[1], fields[2], fields[3].strip()
        if not question_id:
            raise DataError(path, number, "empty question id", "give every row a unique id")
        if not question.strip() or not context.strip():
            raise DataError(path, number, "empty question or context", "fill in both text columns")
        _check_label(path, number, label, labels)
        if question_id in seen:
            raise DataError(
                path,
                number,
                f"duplicate id {question_id!r} (first on line {seen[question_id]})",
                "give every row a unique id",
            )
        seen[question_id] = number
        questions.append(
            Question(
                id=question_id, question=question, context=context, label=label, source=f"{path}:{number}"
            )
        )
    _require_examples(path, questions, "questions")
    return questions


def looks_like_json(path: Path | str) -> bool:
    """A QA file in PubMedQA's JSON layout (by suffix, or content starting with `{`), else BioASQ's TSV."""
    if Path(path).suffix.lower() == ".json":
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    except OSError:
        return False  # the reader reports the problem with its own message
