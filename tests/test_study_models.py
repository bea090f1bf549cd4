"""A study keeps one saved model per setting (its best-dev seed) and names the best of them."""

from __future__ import annotations

from pathlib import Path

import yaml

from biotune.study import RunStatus, StudyStore, run_study


def _study(
    path: Path, model: Path, data: Path, keep: str | None, techniques: list[str] | None = None
) -> Path:
    study = {
        "models": [str(model)],
        "datasets": ["BIOSSES"],
        "techniques": techniques or ["standard"],
        "seeds": 2,
        "hyperparameters": {"epochs": [1], "batch_size": [8], "learning_rate": [1e-4]},
        "train": {"limit_train": 8, "max_length": 64, "data_dir": str(data), "pair_encoding": "siamese"},
    }
    if keep:
        study["keep_models"] = keep
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def _saved(study_dir: Path) -> set[str]:
    return {p.parent.parent.name for p in study_dir.glob("runs/*/seed-*/model")}


def test_only_the_best_dev_run_keeps_its_model(tiny_bert: Path, shared_data: Path, tmp_path: Path) -> None:
    run_study(_study(tmp_path / "s.yaml", tiny_bert, shared_data, None), tmp_path / "out")
    with StudyStore(tmp_path / "out", read_only=True) as store:
        done = [r for r in store.runs() if r.status == RunStatus.DONE]
    assert len(done) == 2
    best = max(done, key=lambda r: r.dev_score or 0.0)
    assert _saved(tmp_path / "out") == {best.run_id}


def test_keep_all_keeps_every_model(tiny_bert: Path, shared_data: Path, tmp_path: Path) -> None:
    run_study(_study(tmp_path / "s.yaml", tiny_bert, shared_data, "all"), tmp_path / "out")
    assert len(_saved(tmp_path / "out")) == 2


def test_each_setting_keeps_its_best_seed_and_the_report_names_the_best(
    tiny_bert: Path, shared_data: Path, tmp_path: Path
) -> None:
    from biotune.report import write_report
    from biotune.report.tables import best_models, summarize_cells

    study = _study(tmp_path / "s.yaml", tiny_bert, shared_data, None, ["standard", "freeze:1"])
    run_study(study, tmp_path / "out")
    with StudyStore(tmp_path / "out", read_only=True) as store:
        done = [r for r in store.runs() if r.status == RunStatus.DONE]
    best_per_technique = {
        technique: max((r for r in done if r.technique == technique), key=lambda r: r.dev_score or 0.0)
        for technique in ("standard", "freeze:1")
    }
    assert _saved(tmp_path / "out") == {r.run_id for r in best_per_technique.values()}
    files = write_report(tmp_path / "out")
    (expected,) = best_models(summarize_cells(done))
    ((best, folder),) = files.models
    assert best.run.run_id == expected.run.run_id and folder is not None and folder.is_dir()
    assert f"runs/{best.run.run_id}/seed-{best.run.seed}/model" in files.markdown.read_text()
