"""Readers for every BLURB file format, and for the formats users' other tools write; each returns typed
examples that remember `file:line`.

Users' own files may also be JSON Lines or CSV with the Hugging Face examples' columns (`tokens` +
`ner_tags` as run_ner.py reads them; `sentence`/`text` + `label`, `sentence1` + `sentence2` + `label` as
run_glue.py reads them; `question` + `context` + `label`), or CoNLL for NER (whitespace-separated columns,
the word first and the tag last). `detect_format` tells them apart by extension and content.

Malformed input raises one DataError naming the file, the 1-based line, the problem and the fix.
No example is ever dropped silently: a line is either part of an example, a header, a
`-DOCSTART-` marker or a blank separator.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from biotune.config import FileFormat
from biotune.data.examples import LabeledDocument, LabeledText, Question, ScoredPair, TaggedSentence
from biotune.errors import ConfigError, DataError

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


# --- users' formats: JSON Lines, CSV (the Hugging Face examples' columns) and CoNLL ------------------------

FILE_FORMATS: tuple[str, ...] = get_args(FileFormat)
FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".conll": "conll"}
# how many content lines `detect_format` looks at
DETECT_LINES = 200


@dataclass(frozen=True)
class ReadOptions:
    """How to read a user's own file: its format (`auto`: by extension and content) and, for tagged files
    whose tags are integers, the tag of each index (a Hugging Face dataset's ClassLabel names)."""

    file_format: str = "auto"
    tag_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Columns:
    """The fields of one record: each a tuple of accepted names, the first the one to write."""

    fields: tuple[tuple[str, ...], ...]
    example: str  # a sample record for the fix

    def names(self) -> str:
        return " + ".join(" or ".join(f"`{name}`" for name in names) for names in self.fields)


TAGGED_COLUMNS = Columns(
    (("tokens", "words"), ("ner_tags", "tags")), '{"tokens": ["IL-2", "gene"], "ner_tags": ["B", "I"]}'
)
LABELED_COLUMNS = Columns((("sentence", "text"), ("label",)), '{"sentence": "...", "label": "CPR:3"}')
SCORED_COLUMNS = Columns(
    (("sentence1",), ("sentence2",), ("label", "score")),
    '{"sentence1": "...", "sentence2": "...", "label": 3.2}',
)
QUESTION_COLUMNS = Columns(
    (("question",), ("context",), ("label",)), '{"question": "...", "context": "...", "label": "yes"}'
)
ID_FIELDS = ("id", "idx", "guid")


def resolve_format(
    path: Path | str, options: ReadOptions, columns: Columns, accepted: tuple[str, ...], what: str
) -> str:
    """The format to read `path` in: the one asked for (if `what` files take it), else `detect_format`'s."""
    chosen = options.file_format
    if chosen not in FILE_FORMATS:
        raise ConfigError(f"unknown file format {chosen!r}; choose one of {', '.join(FILE_FORMATS)}")
    if chosen == "auto":
        return detect_format(path, columns, accepted)
    if chosen not in accepted:
        raise ConfigError(
            f"{path}: {what} files cannot be read as {chosen}; they take {', '.join(accepted)} (or auto)"
        )
    return chosen


def detect_format(path: Path | str, columns: Columns, accepted: tuple[str, ...]) -> str:
    """Which of `accepted` (the first: the type's BLURB layout) a file is in.

    By extension first (.jsonl/.ndjson, .csv, .conll; .json is JSON Lines unless the type also takes
    PubMedQA's JSON), then by content: a first line that is a JSON object with the record's fields is
    JSON Lines, a first line naming the fields as comma-separated columns is a CSV header, and tagged
    lines mostly split into `word<TAB>tag` are BLURB's TSV, into more or other whitespace columns CoNLL.
    """
    suffix = Path(path).suffix.lower()
    by_suffix = FORMAT_BY_SUFFIX.get(suffix)
    if by_suffix in accepted:
        return str(by_suffix)
    if suffix == ".json" and "jsonl" in accepted and "json" not in accepted:
        return "jsonl"  # what `datasets`' to_json() writes
    content = [line for line in _first_lines(read_text(path), DETECT_LINES) if line.strip()]
    if not content:
        return accepted[0]  # its reader says the file is empty
    first = content[0]
    if "jsonl" in accepted and first.lstrip().startswith("{") and _is_record(first, columns):
        return "jsonl"
    if "csv" in accepted and _is_csv_header(first, columns):
        return "csv"
    if "conll" in accepted:
        words = [line for line in content if not line.startswith(DOCSTART)]
        tab_pairs = sum(1 for line in words if len(line.split("\t")) == 2)
        if words and tab_pairs * 2 < len(words):
            return "conll"
    return accepted[0]


def _first_lines(text: str, count: int) -> list[str]:
    return LINE_END.split(text, maxsplit=count)[:count]


def _is_record(line: str, columns: Columns) -> bool:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and any(name in record for name in columns.fields[0])


def _is_csv_header(line: str, columns: Columns) -> bool:
    try:
        names = {name.strip() for name in next(csv.reader([line]))}
    except (csv.Error, StopIteration):
        return False
    return all(any(name in names for name in alternatives) for alternatives in columns.fields)


def _json_records(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for every non-blank line of a JSON Lines file."""
    fix = "write one JSON object per line (JSON Lines)"
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("["):
            raise DataError(
                path,
                number,
                "a JSON array where JSON Lines (one object per line) was expected",
                "write one object per line: datasets' to_json(), or pandas' to_json(orient='records', "
                "lines=True)",
            )
        try:
            record = json.loads(line, object_pairs_hook=_reject_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise DataError(path, number, f"broken JSON: {exc.msg} (column {exc.colno})", fix) from None
        except _DuplicateKey as exc:
            raise DataError(
                path, number, f"key {exc.key!r} appears twice in one object", "give every field once"
            ) from None
        except RecursionError:
            raise DataError(
                path, number, "JSON nested too deeply", "a record holds strings and lists"
            ) from None
        if not isinstance(record, dict):
            raise DataError(path, number, f"a JSON {type(record).__name__}, not an object", fix)
        yield number, record


def _csv_rows(path: Path | str, columns: Columns) -> list[tuple[int, list[str]]]:
    """(first line, fields) of every non-blank row (csv module, strict: a stray quote is an error)."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    before = 0  # lines read before the current row: a quoted field may span several
    while True:
        start = before + 1
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise DataError(path, start, f"broken CSV: {exc}", CSV_FIX) from None
        before = reader.line_num
        if any(cell.strip() for cell in row):
            rows.append((start, row))
        elif start == 1:
            raise DataError(
                path, start, "the first line is blank", f"start with the header row naming {columns.names()}"
            )


CSV_FIX = 'quote a field that holds commas or line breaks ("..."), and double the quotes inside it ("")'


def _csv_records(path: Path | str, columns: Columns) -> Iterator[tuple[int, dict[str, Any]]]:
    """(first line, row by header name) for every row of a CSV file whose first line is its header."""
    rows = _csv_rows(path, columns)
    if not rows:
        return
    header_line, header = rows[0][0], [cell.strip() for cell in rows[0][1]]
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise DataError(
            path, header_line, f"column {repeated[0]!r} appears twice in the header", "name every column once"
        )
    missing = [names for names in columns.fields if not any(name in header for name in names)]
    if missing:
        raise DataError(
            path,
            header_line,
            f"the header ({', '.join(header)}) has no {' or '.join(repr(n) for n in missing[0])} column",
            f"a header row naming the columns {columns.names()}",
        )
    data = rows[1:]
    # the field count most rows have: when the header is the odd one out, it is the line to fix
    usual = Counter(len(fields) for _, fields in data).most_common(1)[0][0] if data else len(header)
    if usual != len(header):
        raise DataError(
            path,
            header_line,
            f"the header names {len(header)} columns, the rows have {usual} fields",
            "give the header one name per column",
        )
    for start, fields in data:
        if len(fields) != len(header):
            raise DataError(
                path,
                start,
                f"{len(fields)} fields, but the header on line {header_line} names {len(header)}",
                CSV_FIX,
            )
        yield start, dict(zip(header, fields, strict=True))


def _records(path: Path | str, file_format: str, columns: Columns) -> Iterator[tuple[int, dict[str, Any]]]:
    return _json_records(path) if file_format == "jsonl" else _csv_records(path, columns)


@dataclass(frozen=True)
class _Record:
    """One record of a JSON Lines or CSV file: its fields in the order of its `Columns`, its id, its line."""

    number: int
    values: tuple[Any, ...]
    id: str
    source: str


def _column_records(path: Path | str, file_format: str, columns: Columns) -> Iterator[_Record]:
    """Every record with each of `columns`' fields looked up (a missing one is an error naming the line)
    and its unique id (`_record_id`), so each reader only checks what its own fields mean."""
    stem = Path(path).stem
    seen: dict[str, int] = {}
    for number, record in _records(path, file_format, columns):
        values = tuple(_field(path, number, record, names, columns) for names in columns.fields)
        yield _Record(number, values, _record_id(path, number, record, seen, stem), f"{path}:{number}")


def _field(
    path: Path | str, number: int, record: Mapping[str, Any], names: tuple[str, ...], columns: Columns
) -> Any:
    for name in names:
        if name in record:
            return record[name]
    found = ", ".join(sorted(record)) or "none"
    raise DataError(
        path,
        number,
        f"no {' or '.join(repr(n) for n in names)} field (fields: {found})",
        f"give every record the fields {columns.names()}, e.g. {columns.example}",
    )


def _text(path: Path | str, number: int, value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise DataError(
            path, number, f"{name} is a {type(value).__name__}, not a text", f"write {name} as a string"
        )
    if not value.strip():
        raise DataError(path, number, f"empty {name}", "remove the record or fill in the text")
    return value


def _label(path: Path | str, number: int, value: Any, labels: Collection[str] | None) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(
            path, number, f"label {value!r} is not a string or an integer", "write the label as a string"
        )
    label = str(value).strip()
    _check_label(path, number, label, labels)
    return label


def _record_id(
    path: Path | str, number: int, record: Mapping[str, Any], seen: dict[str, int], stem: str
) -> str:
    """The record's own id (`id`, `idx` or `guid`), which must be unique; else `<file stem>:<line>`."""
    value = next((record[name] for name in ID_FIELDS if name in record), None)
    if value is None:
        return f"{stem}:{number}"
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise DataError(
            path,
            number,
            f"id {value!r} is not a non-empty string or integer",
            "give every record a unique id",
        )
    record_id = str(value).strip()
    if record_id in seen:
        raise DataError(
            path,
            number,
            f"duplicate id {record_id!r} (first on line {seen[record_id]})",
            "give every record a unique id",
        )
    seen[record_id] = number
    return record_id


def _cell_list(path: Path | str, number: int, value: Any, name: str) -> list[Any]:
    """A list field: a JSON list, or a CSV cell holding a JSON or Python list (pandas writes those) or
    whitespace-separated items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise DataError(
                    path,
                    number,
                    f"{name} starts with '[' but is not a list",
                    f"write {name} as a list (\"['IL-2', 'gene']\") or as items separated by spaces",
                ) from None
        else:
            value = text.split()
    if not isinstance(value, list):
        raise DataError(
            path, number, f"{name} is a {type(value).__name__}, not a list", f"write {name} as a list"
        )
    return value


def read_tagged_records(
    path: Path | str,
    allowed_tags: Collection[str] | None = None,
    file_format: str = "jsonl",
    tag_names: Sequence[str] | None = None,
) -> list[TaggedSentence]:
    """JSON Lines or CSV with `tokens` + `ner_tags` (run_ner.py's columns), one sentence per record.

    Tags are strings, or integers with `tag_names` (the tag of each index, in order). In a CSV cell,
    tokens and tags are a list (JSON or Python) or separated by spaces.
    """
    allowed = set(allowed_tags) if allowed_tags is not None else None
    sentences: list[TaggedSentence] = []
    for record in _column_records(path, file_format, TAGGED_COLUMNS):
        number = record.number
        words = _cell_list(path, number, record.values[0], "tokens")
        tags = _cell_list(path, number, record.values[1], "ner_tags")
        if not words:
            raise DataError(path, number, "a sentence without tokens", "remove the record")
        if len(words) != len(tags):
            raise DataError(
                path, number, f"{len(words)} tokens but {len(tags)} tags", "give every token exactly one tag"
            )
        for word in words:
            if not isinstance(word, str) or not word.strip():
                raise DataError(
                    path, number, f"token {word!r} is not a non-empty string", "write every token as text"
                )
        names = [_tag_name(path, number, tag, tag_names) for tag in tags]
        for tag in names:
            if allowed is not None and tag not in allowed:
                raise DataError(
                    path, number, f"unknown tag {tag!r}", f"use one of: {', '.join(sorted(allowed))}"
                )
        sentences.append(
            TaggedSentence(
                id=record.id, words=tuple(words), tags=tuple(names), source=record.source, word_lines=False
            )
        )
    _require_examples(path, sentences, "sentences")
    return sentences


def _tag_name(path: Path | str, number: int, tag: Any, tag_names: Sequence[str] | None) -> str:
    if isinstance(tag, str) and tag.strip():
        if tag.strip().lstrip("-").isdigit() and tag_names is not None:  # a CSV cell's integers are text
            return _tag_name(path, number, int(tag), tag_names)
        return tag.strip()
    if isinstance(tag, int) and not isinstance(tag, bool):
        if tag_names is None:
            raise DataError(
                path,
                number,
                f"tag {tag} is a number, and no tag names were given",
                "give the tag of each index in order (--tag-names O,B-Disease,I-Disease; from a Hugging "
                "Face dataset: features['ner_tags'].feature.names), or write the tags as strings",
            )
        if not 0 <= tag < len(tag_names):
            raise DataError(
                path,
                number,
                f"tag {tag} is outside the {len(tag_names)} tag names (0-{len(tag_names) - 1})",
                "give one tag name per index (--tag-names)",
            )
        return tag_names[tag]
    raise DataError(path, number, f"tag {tag!r} is not a string or an integer", "write every tag as a string")


def read_conll(path: Path | str, allowed_tags: Collection[str] | None = None) -> list[TaggedSentence]:
    """CoNLL: one word per line in whitespace-separated columns (the word first, the tag last), a blank line
    between sentences; `-DOCSTART-` lines are skipped. Every line has the file's number of columns."""
    allowed = set(allowed_tags) if allowed_tags is not None else None
    stem = Path(path).stem
    lines = _lines(path)
    rows = {
        number: COLUMN_SPACE.split(line.strip(" \t"))
        for number, line in enumerate(lines, start=1)
        if line.strip(" \t") and not line.startswith(DOCSTART)
    }
    # the columns most lines have: a wrong line is named as such even when it comes first
    columns = Counter(len(fields) for fields in rows.values()).most_common(1)[0][0] if rows else 2
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    first_line = 0

    def close() -> None:
        if words:
            sentences.append(
                TaggedSentence(f"{stem}:{first_line}", tuple(words), tuple(tags), f"{path}:{first_line}")
            )
            words.clear()
            tags.clear()

    for number in range(1, len(lines) + 1):
        fields = rows.get(number)
        if fields is None:  # blank or -DOCSTART-
            close()
            continue
        if len(fields) < 2:
            raise DataError(
                path,
                number,
                "one column: a word without its tag",
                "write the word, any other columns and the tag last, separated by spaces or tabs",
            )
        if len(fields) != columns:
            raise DataError(
                path,
                number,
                f"{len(fields)} columns where the file's lines have {columns}",
                "give every line the same columns (the word first, the tag last); a word cannot hold spaces",
            )
        tag = fields[-1]
        if allowed is not None and tag not in allowed:
            raise DataError(path, number, f"unknown tag {tag!r}", f"use one of: {', '.join(sorted(allowed))}")
        if not words:
            first_line = number
        words.append(fields[0])
        tags.append(tag)
    close()
    _require_examples(path, sentences, "sentences")
    return sentences


COLUMN_SPACE = re.compile(r"[ \t]+")


def read_labeled_records(
    path: Path | str, labels: Collection[str] | None = None, file_format: str = "jsonl"
) -> list[LabeledText]:
    """JSON Lines or CSV with `sentence` (or `text`) + `label` (run_glue.py's single-sentence columns)."""
    examples = [
        LabeledText(
            id=record.id,
            text=_text(path, record.number, record.values[0], "sentence"),
            label=_label(path, record.number, record.values[1], labels),
            source=record.source,
        )
        for record in _column_records(path, file_format, LABELED_COLUMNS)
    ]
    _require_examples(path, examples, "examples")
    return examples


def read_scored_records(path: Path | str, file_format: str = "jsonl") -> list[ScoredPair]:
    """JSON Lines or CSV with `sentence1` + `sentence2` + `label` (run_glue.py's STS-B columns), scored 0-4
    as BIOSSES is."""
    pairs: list[ScoredPair] = []
    for record in _column_records(path, file_format, SCORED_COLUMNS):
        number, value = record.number, record.values[2]
        text_a = _text(path, number, record.values[0], "sentence1")
        text_b = _text(path, number, record.values[1], "sentence2")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise DataError(
                path,
                number,
                f"score {value!r} is not a number",
                f"write the score as a number from 0 to {BIOSSES_MAX_SCORE:g}",
            )
        pairs.append(
            ScoredPair(
                id=record.id,
                text_a=text_a,
                text_b=text_b,
                score=_parse_score(path, number, str(value).strip()),
                source=record.source,
            )
        )
    _require_examples(path, pairs, "sentence pairs")
    return pairs


def read_question_records(
    path: Path | str, labels: Collection[str] | None = None, file_format: str = "jsonl"
) -> list[Question]:
    """JSON Lines or CSV with `question` + `context` + `label`."""
    questions = [
        Question(
            id=record.id,
            question=_text(path, record.number, record.values[0], "question"),
            context=_text(path, record.number, record.values[1], "context"),
            label=_label(path, record.number, record.values[2], labels),
            source=record.source,
        )
        for record in _column_records(path, file_format, QUESTION_COLUMNS)
    ]
    _require_examples(path, questions, "questions")
    return questions
