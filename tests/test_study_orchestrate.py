"""Running a study: resume rules, starting over, Ctrl-C, the folder lock, and what a worker hands back.

Training is replaced by a stand-in (`run_training` patched) so these check the orchestration in
milliseconds; tests/test_study_resume.py runs the real thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import biotune.runs
from _run_files import real_results, seed_result
from biotune.config import TrainConfig
from biotune.errors import ConfigError
from biotune.run_folder import RunResults, SeedResult
from biotune.study import RunStatus, StudyStore, run_study
from biotune.study.orchestrate import portable, study_lock
from biotune.study.runners import outcome_from_results


def fake_results(config: TrainConfig, seed_status: str = "ok") -> RunResults:
    """What run_training returns for one seed; the score encodes the run so results can be traced. The
    seed's figures arrive as numpy scalars, as a scorer may hand them over."""
    seed = config.seeds[0]
    score = 10.0 * seed + (5.0 if config.techniques else 0.0)
    record = seed_result(
        seed, seed_status, dev=0.0, test=0.0, error=None if seed_status == "ok" else "collapsed"
    )
    values = record.model_dump()
    values["train_seconds"] = np.float32(0.5)
    values["dev"]["score"], values["test"]["score"] = np.float64(score + 1), score
    return real_results(
        dataset=config.dataset,
        config=config.model_dump(mode="json"),
        technique_label="+".join(config.techniques) or "standard",
        seeds=[SeedResult.model_validate(values)],
    )


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[TrainConfig]:
    """Patch training; the list records every config trained, in order."""
    calls: list[TrainConfig] = []

    def run_training(config: TrainConfig, output_dir: Path, progress: bool = False, **_: Any) -> RunResults:
        calls.append(config)
        (Path(output_dir) / "results.json").write_text("{}", encoding="utf-8")
        if config.seeds == [13]:
            raise RuntimeError("a bug in one run")
        return fake_results(config, "failed" if config.seeds == [2] else "ok")

    monkeypatch.setattr(biotune.runs, "run_training", run_training)
    return calls


def study_file(tmp_path: Path, tiny_bert: Path, shared_data: Path, **changes: Any) -> Path:
    values: dict[str, Any] = {
        "models": [str(tiny_bert)],
        "datasets": ["BIOSSES"],
        "techniques": ["standard", "reinit:1"],
        "seeds": 3,
        "train": {"data_dir": str(shared_data), "limit_train": 8},
    }
    values.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def statuses(study_dir: Path) -> dict[tuple[str, int], RunStatus]:
    with StudyStore(study_dir, read_only=True) as store:
        return {(r.technique, r.seed): r.status for r in store.runs()}


def test_a_study_runs_every_run_once_and_a_rerun_keeps_them(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, trained: list[TrainConfig]
) -> None:
    path, out = study_file(tmp_path, tiny_bert, shared_data), tmp_path / "out"
    first = run_study(path, out)
    assert len(first.ran) == 6 and len(trained) == 6
    assert first.counts == {
        RunStatus.QUEUED: 0,
        RunStatus.RUNNING: 0,
        RunStatus.DONE: 4,
        RunStatus.FAILED: 2,
        RunStatus.PRUNED: 0,
    }
    with StudyStore(out, read_only=True) as store:
        record = store.get(first.ran[4])
    assert (record.technique, record.seed, record.test_score, record.dev_score) == ("reinit:1", 1, 15.0, 16.0)
    assert record.metrics["train_seconds"] == 0.5 and record.metrics["resolved"]["learning_rate"] is None
    assert (out / "study.yaml").is_file()

    second = run_study(path, out)
    assert second.ran == [] and len(trained) == 6
    assert statuses(out)[("standard", 2)] == RunStatus.FAILED  # failed is a result: kept, not re-run


def test_resume_reruns_interrupted_runs_and_adds_new_ones(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, trained: list[TrainConfig]
) -> None:
    out = tmp_path / "out"
    run_study(study_file(tmp_path, tiny_bert, shared_data), out)
    with StudyStore(out) as store:  # one run queued, one left running by a process that was killed
        store.requeue_failed()
        victim = store.runs(RunStatus.QUEUED)[0]
        store.mark_running(victim.run_id, "dead")
    trained.clear()
    more_seeds = run_study(study_file(tmp_path, tiny_bert, shared_data, seeds=4), out)
    assert victim.run_id in more_seeds.ran and len(more_seeds.ran) == 4
    assert sorted((bool(c.techniques), c.seeds[0]) for c in trained) == [
        (False, 2),
        (False, 3),
        (True, 2),
        (True, 3),
    ]
    with StudyStore(out, read_only=True) as store:
        assert store.get(victim.run_id).attempts == 3  # the first try, the killed one, this one


def test_retry_failed_runs_failed_runs_again(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, trained: list[TrainConfig]
) -> None:
    path, out = study_file(tmp_path, tiny_bert, shared_data), tmp_path / "out"
    run_study(path, out)
    trained.clear()
    again = run_study(path, out, retry_failed=True)
    assert len(again.ran) == 2 and {c.seeds[0] for c in trained} == {2}


def test_a_different_study_in_the_same_folder_is_refused_unless_starting_over(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, trained: list[TrainConfig]
) -> None:
    out = tmp_path / "out"
    run_study(study_file(tmp_path, tiny_bert, shared_data), out)
    old_folders = {p.name for p in (out / "runs").iterdir()}
    changed = study_file(
        tmp_path, tiny_bert, shared_data, train={"data_dir": str(shared_data), "limit_train": 4}
    )
    with pytest.raises(ConfigError, match="--no-resume"):
        run_study(changed, out)
    over = run_study(changed, out, resume=False)
    assert len(over.ran) == 6
    new_folders = {p.name for p in (out / "runs").iterdir()}
    assert new_folders == set(over.ran) and not new_folders & old_folders


def test_a_run_that_raises_is_recorded_and_the_rest_go_on(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, trained: list[TrainConfig]
) -> None:
    out = tmp_path / "out"
    result = run_study(study_file(tmp_path, tiny_bert, shared_data, seeds=[13, 0]), out)
    assert len(result.ran) == 4
    with StudyStore(out, read_only=True) as store:
        broken = [r for r in store.runs() if r.seed == 13]
    assert all(r.crashed and r.error == "RuntimeError: a bug in one run" for r in broken)
    assert "RuntimeError" in (out / broken[0].run_dir / "error.txt").read_text(encoding="utf-8")
    assert statuses(out)[("reinit:1", 0)] == RunStatus.DONE


def test_ctrl_c_puts_the_run_in_flight_back_in_the_queue(
    tmp_path: Path,
    tiny_bert: Path,
    shared_data: Path,
    trained: list[TrainConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(config: TrainConfig, output_dir: Path, progress: bool = False, **_: Any) -> RunResults:
        if config.seeds == [1]:
            raise KeyboardInterrupt
        return fake_results(config)

    monkeypatch.setattr(biotune.runs, "run_training", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_study(study_file(tmp_path, tiny_bert, shared_data), out)
    found = statuses(out)
    assert found[("standard", 0)] == RunStatus.DONE
    assert found[("standard", 1)] == RunStatus.QUEUED
    assert list(found.values()).count(RunStatus.QUEUED) == 5


def test_one_process_at_a_time_drives_a_study_folder(tmp_path: Path) -> None:
    with (
        study_lock(tmp_path),
        pytest.raises(ConfigError, match="another `biotune study`"),
        study_lock(tmp_path),
    ):
        pass
    with study_lock(tmp_path):  # released when the holder is done
        pass


def test_a_worker_hands_back_plain_json_and_the_seed_verdict() -> None:
    config = TrainConfig(dataset="BIOSSES", seeds=[2], techniques=["reinit:1"])
    outcome = outcome_from_results("abc", fake_results(config, "failed"), started_at=1.0)
    assert outcome.status == RunStatus.FAILED and not outcome.crashed and outcome.error == "collapsed"
    assert (outcome.dev_score, outcome.test_score) == (26.0, 25.0)
    assert type(outcome.metrics["dev"]["score"]) is float and type(outcome.metrics["train_seconds"]) is float
    assert outcome.metrics["technique_label"] == "reinit:1" and outcome.started_at == 1.0
    ok = outcome_from_results("abc", fake_results(config.model_copy(update={"seeds": [0]})), started_at=1.0)
    assert ok.status == RunStatus.DONE and ok.error is None


def test_workers_get_absolute_paths_but_aliases_stay_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-model").mkdir()
    (tmp_path / "minilm-l6").mkdir()  # a folder named like the alias must not shadow it
    moved = portable({"model": "my-model", "data_dir": "data", "seeds": [0]})
    assert moved == {"model": str(tmp_path / "my-model"), "data_dir": str(tmp_path / "data"), "seeds": [0]}
    assert portable({"model": "minilm-l6", "data_dir": None})["model"] == "minilm-l6"
    assert portable({"model": "org/hub-model"})["model"] == "org/hub-model"
