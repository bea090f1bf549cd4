"""Only `biotune/tasks/` branches on the task type or head kind; a new task type is one class and one line.

The branch count is an AST walk over src/biotune outside tasks/. A branch is
- a comparison (==, !=, in, not in) with a task-type or head-kind name as a string constant (alone or in a
  tuple/list/set), or with an operand named `task_type`, `head` or `kind` (a variable, an attribute, a
  `["task_type"]` subscript or a `.get("task_type")` call);
- a dict literal with a task-type or head-kind name among its keys (a dispatch table);
- `isinstance(x, <example type>)` on TaggedSentence, LabeledText, ScoredPair, LabeledDocument or Question.
Run this file as a script to print every branch it finds: `python tests/test_task_boundary.py`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from biotune import baselines, metrics
from biotune.data.loading import load_own_files
from biotune.data.registry import custom_spec
from biotune.tasks import TASK_CLASSES, ClassificationTask, get_task, read_file

SOURCE = Path(__file__).resolve().parents[1] / "src" / "biotune"
NAMES = {
    "ner",
    "pico",
    "re",
    "similarity",
    "classification",
    "multilabel",
    "qa",
    "token",
    "sequence",
    "regression",
}
KEYS = {"task_type", "head", "kind"}
EXAMPLE_TYPES = {"TaggedSentence", "LabeledText", "ScoredPair", "LabeledDocument", "Question"}

# The branches left outside tasks/, per file, and why.
ALLOWED: dict[str, int] = {
    # BLURB_DATASETS groups the 13 datasets by BLURB's own type names ("similarity", "classification"):
    # the benchmark's composition, not a dispatch on a task type
    "metrics.py": 1,
}


def _names_in(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_names_in(element) for element in node.elts))
    return set()


def _is_keyed(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in KEYS
    if isinstance(node, ast.Attribute):
        return node.attr in KEYS
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value in KEYS
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value in KEYS
    return False


def _is_example_type_check(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"):
        return False
    types = (
        {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} if len(node.args) == 2 else set()
    )
    return bool(types & EXAMPLE_TYPES)


def task_branches(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, kind) of every task-type branch in a module (see the module docstring)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            if any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
                operands = [node.left, *node.comparators]
                if any(_names_in(o) or _is_keyed(o) for o in operands):
                    yield node.lineno, "compare"
        elif isinstance(node, ast.Dict):
            if any(key is not None and _names_in(key) for key in node.keys):
                yield node.lineno, "table"
        elif _is_example_type_check(node):
            yield node.lineno, "example"


def branches_outside_tasks(root: Path = SOURCE) -> dict[str, list[tuple[int, str]]]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "tasks":
            continue
        branches = sorted(task_branches(ast.parse(path.read_text(encoding="utf-8"))))
        if branches:
            found[relative.as_posix()] = branches
    return found


def test_no_task_type_branch_outside_tasks_but_the_listed_ones() -> None:
    counts = {file: len(branches) for file, branches in branches_outside_tasks().items()}
    assert counts == ALLOWED, (
        "task-type branches outside biotune/tasks/ changed: move the branch into the task type "
        "(biotune/tasks/) or its head kind (tasks/heads.py), or list it in ALLOWED with the reason"
    )


def test_the_counter_finds_each_kind_of_branch() -> None:
    code = """
if task_type == "ner": pass
if head in ("regression", "multilabel"): pass
if card["head"] != "token": pass
x = "qa" if spec.task_type == "qa" else None
TABLE = {"similarity": 1}
if isinstance(example, TaggedSentence): pass
if name == "other" or size in (1, 2): pass
"""
    assert [kind for _, kind in sorted(task_branches(ast.parse(code)))] == [
        "compare",
        "compare",
        "compare",
        "compare",
        "table",
        "example",
    ]


class SentimentTask(ClassificationTask):
    """A new task type as a user would add one: a module with one class (here the test), one registry line."""

    task_type = "sentiment"
    metric_name = "accuracy"
    unit = "reviews"
    own_max_length = 64
    description = "review sentiment"

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.qa_scores(gold, predicted)


def test_a_new_task_type_is_one_class_and_one_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(TASK_CLASSES, SentimentTask.task_type, SentimentTask)  # the registry line
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("a\tgreat film\tpos\nb\tawful plot\tneg\nc\tloved it\tpos\n", encoding="utf-8")
    dev.write_text("d\tboring\tneg\ne\tsuperb\tpos\n", encoding="utf-8")

    assert [example.label for example in read_file("sentiment", dev)] == ["neg", "pos"]
    spec = custom_spec("sentiment", ["neg", "pos"])
    assert (spec.metric, spec.unit, spec.max_length, spec.defaults.epochs) == ("accuracy", "reviews", 64, 3)
    splits = load_own_files("sentiment", train, dev)
    assert splits.spec.labels == ("neg", "pos")
    task = get_task("sentiment", splits.spec.labels)
    assert metrics.compute_for_task("sentiment", ["pos", "neg"], ["pos", "pos"])["score"] == 50.0
    assert baselines.trivial_scores(task, splits.spec, splits.train, splits.dev)["score"] == 50.0  # all "pos"
    row = task.prediction_row(task.predict_input("x", ("fine",)), np.array([0.2, 0.8]), 0.5, "")
    assert row == {"label": "pos", "probabilities": {"neg": 0.2, "pos": 0.8}}


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    found = branches_outside_tasks(root)
    for file, branches in found.items():
        print(f"{len(branches):3d} {file}: " + ", ".join(f"{line}:{kind}" for line, kind in branches))
    print("total", sum(len(branches) for branches in found.values()))
