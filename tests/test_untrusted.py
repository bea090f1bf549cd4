"""Untrusted files: configs, model folders, checkpoints, the study store and names from any of them.

Each test shows a refusal: a YAML Python tag, custom model code without --trust-remote-code, pickle in
a checkpoint, SQL built from strings, a name that climbs out of its output folder. The source-tree
scans check themselves on a snippet that breaks each rule, so they cannot pass by scanning nothing.
"""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

import biotune.runs
from _slices import write_slice
from biotune.config import TrainConfig, load_train_config, read_yaml
from biotune.errors import ConfigError
from biotune.models import build_model, load_saved_model
from biotune.runs import run_training
from biotune.safety import UnsafePathError, safe_child, safe_name
from biotune.study import StudyStore, run_study
from biotune.study.grid import RunSpec, expand_grid
from biotune.study.spec import StudyConfig, load_study

SOURCE = Path(__file__).resolve().parents[1] / "src" / "biotune"


# --- YAML ---------------------------------------------------------------------------------------------


def _python_tag_yaml(path: Path, sentinel: Path) -> Path:
    path.write_text(f'dataset: gad\nseeds: !!python/object/apply:os.system ["touch {sentinel}"]\n')
    return path


def test_yaml_with_a_python_object_tag_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "EXECUTED"
    config = _python_tag_yaml(tmp_path / "train.yaml", sentinel)
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(config)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(config)
    study = tmp_path / "study.yaml"
    study.write_text(f"models: !!python/object/apply:os.system ['touch {sentinel}']\ndatasets: [gad]\n")
    with pytest.raises(ConfigError):
        load_study(study)
    assert not sentinel.exists()
    with pytest.raises(yaml.YAMLError):  # the tag is real: only an unsafe loader would build it
        yaml.safe_load(config.read_text())


# --- custom model code -----------------------------------------------------------------------------------


def _model_with_custom_code(tiny_bert: Path, folder: Path, model_type: str) -> tuple[Path, Path]:
    """A copy of the tiny BERT whose config points AutoConfig/AutoModel at code in the folder."""
    folder.mkdir()
    for item in tiny_bert.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    sentinel = folder / "EXECUTED"
    (folder / "custom_model.py").write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('the custom code ran')\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {
        "AutoConfig": "custom_model.CustomConfig",
        "AutoModel": "custom_model.CustomModel",
        "AutoModelForSequenceClassification": "custom_model.CustomModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder, sentinel


def test_trust_remote_code_is_off_unless_asked_for() -> None:
    assert TrainConfig().trust_remote_code is False
    assert load_train_config(None, {"dataset": "gad"}).trust_remote_code is False
    assert StudyConfig(models=["m"], datasets=["gad"]).train.get("trust_remote_code") is None


def test_a_model_that_needs_its_own_code_is_refused_without_the_flag(tiny_bert: Path, tmp_path: Path) -> None:
    folder, sentinel = _model_with_custom_code(tiny_bert, tmp_path / "custom", model_type="custom-encoder")
    with pytest.raises(ConfigError, match="custom code"):
        build_model(str(folder), "sequence", ["0", "1"])
    assert not sentinel.exists()


def test_a_known_architecture_ignores_the_custom_code_it_points_to(tiny_bert: Path, tmp_path: Path) -> None:
    folder, sentinel = _model_with_custom_code(tiny_bert, tmp_path / "custom", model_type="bert")
    model = build_model(str(folder), "sequence", ["0", "1"])
    assert type(model).__module__.startswith("transformers.models.bert")
    assert not sentinel.exists()


def test_training_on_custom_code_is_one_clear_error(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    folder, sentinel = _model_with_custom_code(tiny_bert, tmp_path / "custom", model_type="custom-encoder")
    task_type, files = write_slice(shared_data, "GAD", tmp_path / "data", 8)
    config = TrainConfig(
        train_file=files["train"], dev_file=files["dev"], task_type=task_type, model=str(folder), seeds=[0]
    )
    try:
        with pytest.raises(ConfigError, match="--trust-remote-code"):
            run_training(config, tmp_path / "run")
    finally:
        assert not sentinel.exists()


def test_a_saved_model_pointing_at_custom_code_is_refused_without_asking(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, sentinel = _model_with_custom_code(tiny_bert, tmp_path / "saved", model_type="custom-encoder")
    card = {"head": "sequence", "task_type": "re", "labels": ["0", "1"], "pooling": "cls", "max_length": 32}
    (folder / "biotune_model.json").write_text(json.dumps(card))
    try:
        with pytest.raises(ConfigError, match="--trust-remote-code"):
            load_saved_model(folder)
    finally:
        assert not sentinel.exists()
    assert "Do you wish to run the custom code" not in capsys.readouterr().out


# --- checkpoints ----------------------------------------------------------------------------------------

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz"}


def _looks_pickled(path: Path) -> bool:
    """Pickle protocol 2+ starts with 0x80 and the protocol byte; torch.save writes a zip of pickles."""
    head = path.read_bytes()[:4]
    return (len(head) >= 2 and head[0] == 0x80 and head[1] in range(2, 6)) or head == b"PK\x03\x04"


def test_saved_checkpoints_are_safetensors_only(shared_data: Path, tiny_bert: Path, tmp_path: Path) -> None:
    task_type, files = write_slice(shared_data, "GAD", tmp_path / "data", 16)
    config = TrainConfig(
        train_file=files["train"],
        dev_file=files["dev"],
        task_type=task_type,
        model=str(tiny_bert),
        seeds=[0],
        epochs=1,
        batch_size=8,
        max_length=32,
        save_model=True,
    )
    run = tmp_path / "run"
    run_training(config, run)
    model_dir = run / "seed-0" / "model"
    assert (model_dir / "model.safetensors").is_file()
    written = [p for p in run.rglob("*") if p.is_file()]
    assert not [p for p in written if p.suffix in PICKLE_SUFFIXES]
    assert not [p for p in written if _looks_pickled(p)]
    model, _, card = load_saved_model(model_dir)
    assert card.task_type == "re" and sum(p.numel() for p in model.parameters()) > 0


# --- the source tree --------------------------------------------------------------------------------------

PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_YAML = {"load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all"}


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_constructs(source: str) -> list[str]:
    """Pickle imports, torch.load without weights_only=True, unsafe YAML loads, trust_remote_code=True,
    numpy loads that allow pickle, and eval/exec."""
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            problems += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING_MODULES:
            problems.append(f"from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            problems += ["from torch import load" for a in node.names if a.name == "load"]
        elif isinstance(node, ast.Call):
            func = node.func
            owner = (
                func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            )
            attr = func.attr if isinstance(func, ast.Attribute) else ""
            if owner == "torch" and attr == "load" and not _is_true(_keyword(node, "weights_only")):
                problems.append(f"line {node.lineno}: torch.load without weights_only=True")
            if owner == "yaml" and attr in UNSAFE_YAML:
                problems.append(f"line {node.lineno}: yaml.{attr}")
            if owner in ("np", "numpy") and attr == "load" and _is_true(_keyword(node, "allow_pickle")):
                problems.append(f"line {node.lineno}: numpy load with allow_pickle=True")
            if _is_true(_keyword(node, "trust_remote_code")):
                problems.append(f"line {node.lineno}: trust_remote_code=True")
            if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
                problems.append(f"line {node.lineno}: {func.id}()")
    return problems


def _module_string_constants(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if isinstance(node.value.value, str):
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def unparameterized_sql(source: str) -> list[str]:
    """SQL statements whose text is not fixed: anything but a literal, a module constant, or an f-string
    that only splices module constants (a column list). Values must travel as parameters."""
    tree = ast.parse(source)
    constants = _module_string_constants(tree)
    problems: list[str] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute", "executemany", "executescript")
            and node.args
        ):
            continue
        statement = node.args[0]
        if isinstance(statement, ast.Constant) and isinstance(statement.value, str):
            continue
        if isinstance(statement, ast.Name) and statement.id in constants:
            continue
        if isinstance(statement, ast.JoinedStr) and all(
            isinstance(part, ast.Constant)
            or (isinstance(part.value, ast.Name) and part.value.id in constants)
            for part in statement.values
            if isinstance(part, ast.Constant | ast.FormattedValue)
        ):
            continue
        problems.append(f"line {node.lineno}: {ast.unparse(statement)[:80]}")
    return problems


BAD_SNIPPET = """
import pickle
import torch, yaml
from torch import load
state = torch.load("model.pt")
ok = torch.load("model.pt", weights_only=True)
config = yaml.load(open("c.yaml"), Loader=yaml.Loader)
model = AutoModel.from_pretrained("x", trust_remote_code=True)
eval("1 + 1")
"""
BAD_SQL = """
COLUMNS = "run_id, status"
db.execute(f"SELECT {COLUMNS} FROM runs WHERE run_id = '{run_id}'")
db.execute("SELECT * FROM runs WHERE model = '%s'" % model)
db.execute("SELECT * FROM runs WHERE model = '{}'".format(model))
db.execute(query)
db.execute(f"SELECT {COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,))
"""


def test_the_scans_catch_what_they_look_for() -> None:
    assert len(unsafe_constructs(BAD_SNIPPET)) == 6  # all but the weights_only=True load
    assert [p.split(":")[0] for p in unparameterized_sql(BAD_SQL)] == ["line 3", "line 4", "line 5", "line 6"]


def _sources() -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20, f"too few sources under {SOURCE}"
    return files


def test_source_tree_has_no_pickle_no_unsafe_loads_no_remote_code() -> None:
    found = {
        str(path.relative_to(SOURCE)): problems
        for path in _sources()
        if (problems := unsafe_constructs(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_every_sql_statement_takes_its_values_as_parameters() -> None:
    executing = [p for p in _sources() if ".execute" in p.read_text(encoding="utf-8")]
    assert executing, "no module runs SQL: the store moved, update this test"
    found = {
        str(path.relative_to(SOURCE)): problems
        for path in executing
        if (problems := unparameterized_sql(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_hostile_names_are_stored_as_data_not_run_as_sql(tiny_bert: Path, tmp_path: Path) -> None:
    hostile = "x'); DROP TABLE runs; --"
    config = TrainConfig(model=hostile, dataset="GAD", seeds=[0], techniques=[])
    spec = RunSpec(position=0, model=hostile, dataset="GAD", technique=hostile, seed=0, config=config)
    with StudyStore(tmp_path / "study") as store:
        store.add_runs([spec])
        record = store.get(spec.run_id)
        assert (record.model, record.technique) == (hostile, hostile)
        assert [r.run_id for r in store.runs()] == [spec.run_id]


# --- names that could escape the output folder ---------------------------------------------------------

ESCAPING = ["../x", "/etc/passwd", "a/../../b", "..", "~/x", "..\\x", "C:\\x", "//server/share", "", "x\x00y"]


@pytest.mark.parametrize("name", ESCAPING)
def test_safe_child_refuses_names_that_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePathError) as error:
        safe_child(tmp_path / "out", name, "run folder")
    assert isinstance(error.value, ConfigError) and "run folder" in str(error.value)


def test_safe_child_keeps_plain_and_nested_names_inside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert safe_child(out, "runs/0123abcd") == out / "runs" / "0123abcd"
    assert safe_child(out, "seed-0") == out / "seed-0"
    assert safe_name("BC5CDR-chem") == "BC5CDR-chem"
    for name in ("a/b", ".", "..", ""):
        with pytest.raises(UnsafePathError):
            safe_name(name, "study name")


def test_safe_child_refuses_a_symbolic_link_out_of_the_folder(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "runs").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_child(out, "runs/abc")


def test_run_folders_come_from_hashes_not_from_the_names_in_a_study(tiny_bert: Path, tmp_path: Path) -> None:
    study = StudyConfig(
        models=["../../outside-model"],
        datasets=["GAD"],
        techniques={"../../outside-technique": [], "/abs/path": ["reinit:1"]},
        seeds=[0],
    )
    for run in expand_grid(study):
        assert safe_name(run.run_id, "run id") == run.run_id and run.run_id.isalnum()
    with pytest.raises(ConfigError, match="unknown dataset"):
        expand_grid(StudyConfig(models=["m"], datasets=["../../etc"], seeds=[0]))


class _NoTraining:
    name = "local"

    def run(self, tasks: Any, callbacks: Any) -> None:
        """Plans and stores the runs but trains nothing."""


def _tamper_run_folders(study_dir: Path, folder: str, status: str) -> None:
    with sqlite3.connect(study_dir / "study.sqlite") as db:
        db.execute("UPDATE runs SET run_dir = ?, status = ?", (folder, status))


@pytest.mark.parametrize("resume", [False, True], ids=["start-over", "resume"])
def test_a_tampered_store_cannot_delete_outside_the_study(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    def fake_training(
        config: TrainConfig, output_dir: Path, progress: bool = False, **_: Any
    ) -> dict[str, Any]:
        raise AssertionError("no training may start on a tampered store")

    monkeypatch.setattr(biotune.runs, "run_training", fake_training)
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        yaml.safe_dump(
            {
                "models": [str(tiny_bert)],
                "datasets": ["BIOSSES"],
                "seeds": 1,
                "train": {"data_dir": str(shared_data)},
            }
        )
    )
    study_dir = tmp_path / "study"
    run_study(study_file, study_dir, runner=_NoTraining())
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    _tamper_run_folders(study_dir, "../victim", "queued")
    try:
        with pytest.raises(UnsafePathError):
            run_study(study_file, study_dir, resume=resume)
    finally:
        assert (victim / "precious.txt").read_text() == "keep me"
