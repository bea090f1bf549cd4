"""The report from a fixture store: best-dev selection, the numbers in its tables, real PNG plots."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from _run_files import split
from biotune.errors import ConfigError
from biotune.report import summarize_cells, write_report
from biotune.report.tables import best_techniques, blurb_rows, instability_rows, select_setting
from biotune.run_folder import Baselines, StoredRunMetrics
from biotune.study import RunOutcome, RunStatus, StudyConfig, StudyStore, expand_grid
from biotune.study.grid import RunSpec

OK, FAILED = RunStatus.DONE, RunStatus.FAILED

# (technique, learning rate) -> per seed (status, dev, test). Selection is by mean dev over ok seeds:
# standard: lr 3e-5 (ok dev 80, 75 -> 77.5) beats lr 1e-5 (60); its failed seed still counts in test.
# reinit1: lr 1e-5 (66) beats lr 3e-5 (ok dev 60, 62 -> 61), though lr 3e-5's mean over all seeds is higher.
BIOSSES_RESULTS = {
    ("standard", 1e-5): [(OK, 50.0, 40.0), (OK, 60.0, 50.0), (OK, 70.0, 60.0)],
    ("standard", 3e-5): [(OK, 80.0, 70.0), (FAILED, 10.0, 5.0), (OK, 75.0, 72.0)],
    ("reinit1", 1e-5): [(OK, 65.0, 60.0), (OK, 66.0, 61.0), (OK, 67.0, 62.0)],
    ("reinit1", 3e-5): [(FAILED, 95.0, 90.0), (OK, 60.0, 59.0), (OK, 62.0, 58.0)],
}


def grid(datasets: list[str], seeds: int = 3, learning_rates: list[float] | None = None) -> list[RunSpec]:
    study = StudyConfig.model_validate(
        {
            "models": ["tiny"],
            "datasets": datasets,
            "techniques": {"standard": [], "reinit1": ["reinit:1"]},
            "seeds": seeds,
            "hyperparameters": {"learning_rate": learning_rates or [1e-5, 3e-5]},
        }
    )
    return expand_grid(study)


def finish(
    store: StudyStore,
    run: RunSpec,
    status: RunStatus,
    dev: float | None,
    test: float | None,
    error: str | None = None,
    crashed: bool = False,
) -> None:
    store.mark_running(run.run_id, "test")
    figures = StoredRunMetrics(dev=split(dev), test=split(test), resolved={"batch_size": 16, "epochs": 3})
    store.finish(RunOutcome(run.run_id, status, dev, test, figures.model_dump(mode="json"), error, crashed))


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """BIOSSES fully finished; GAD partly: one run raised, one is running, the rest are queued."""
    runs = grid(["BIOSSES", "GAD"])
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        for run in runs:
            if run.dataset == "BIOSSES":
                status, dev, test = BIOSSES_RESULTS[(run.technique, run.hyperparameters["learning_rate"])][
                    run.seed
                ]
                finish(store, run, status, dev, test, error=None if status == OK else "collapsed: no better")
        gad = [run for run in runs if run.dataset == "GAD"]
        finish(store, gad[0], FAILED, None, None, error="DataError: GAD/train.tsv:3: bad label", crashed=True)
        store.mark_running(gad[1].run_id, "still going")
    return tmp_path


def biosses_cells(study_dir: Path) -> dict[str, object]:
    with StudyStore(study_dir, read_only=True) as store:
        cells = summarize_cells(store.runs())
    return {c.technique: c for c in cells if c.dataset == "BIOSSES"}


def test_best_mean_dev_over_ok_seeds_picks_the_setting(study_dir: Path) -> None:
    cells = biosses_cells(study_dir)
    standard, reinit = cells["standard"], cells["reinit1"]
    assert standard.hyperparameters["learning_rate"] == 3e-5
    assert reinit.hyperparameters["learning_rate"] == 1e-5
    assert [c.mean_dev_ok for c in standard.candidates] == [pytest.approx(60.0), pytest.approx(77.5)]
    assert [c.selected for c in reinit.candidates] == [True, False]


def test_selection_falls_back_when_no_seed_is_ok_and_prefers_the_first_on_ties() -> None:
    from biotune.study.records import RunRecord

    def record(status: RunStatus, dev: float | None) -> RunRecord:
        return RunRecord(
            "id",
            0,
            "m",
            "BIOSSES",
            "standard",
            (),
            {},
            0,
            {},
            status,
            dev,
            None,
            {},
            None,
            False,
            None,
            None,
            None,
            None,
            1,
            None,
            "runs/id",
        )

    assert select_setting([[record(FAILED, 5.0)], [record(FAILED, 9.0)]]) == 1
    assert select_setting([[record(OK, 7.0)], [record(OK, 7.0)]]) == 0
    assert select_setting([[record(RunStatus.QUEUED, None)], [record(RunStatus.QUEUED, None)]]) == 0


def test_statistics_cover_every_finished_seed_of_the_selected_setting(study_dir: Path) -> None:
    cells = biosses_cells(study_dir)
    standard, reinit = cells["standard"], cells["reinit1"]
    assert standard.test.mean == pytest.approx(np.mean([70.0, 5.0, 72.0]))
    assert standard.test.std == pytest.approx(np.std([70.0, 5.0, 72.0], ddof=1))
    assert standard.dev.mean == pytest.approx(np.mean([80.0, 10.0, 75.0]))
    assert (standard.finished, standard.failed, standard.crashed, standard.pending) == (3, 1, 0, 0)
    assert standard.failure_rate == pytest.approx(1 / 3)
    assert reinit.test.mean == pytest.approx(61.0) and reinit.test.std == pytest.approx(1.0)
    assert standard.seed_scores == [(0, 70.0, False), (1, 5.0, True), (2, 72.0, False)]


def test_best_technique_and_instability_against_standard(study_dir: Path) -> None:
    with StudyStore(study_dir, read_only=True) as store:
        cells = summarize_cells(store.runs())
    best = {(b.model, b.dataset): b for b in best_techniques(cells)}
    assert best[("tiny", "BIOSSES")].best.technique == "reinit1"
    assert ("tiny", "GAD") not in best  # nothing scored there yet
    (row,) = [r for r in instability_rows(cells) if r.cell.dataset == "BIOSSES"]
    assert row.reference.technique == "standard"
    assert row.std_change == pytest.approx(1.0 - np.std([70.0, 5.0, 72.0], ddof=1))
    assert row.failure_rate_change == pytest.approx(0.0 - 1 / 3)
    assert row.mean_change == pytest.approx(61.0 - np.mean([70.0, 5.0, 72.0]))


def test_report_files_hold_the_numbers_and_a_real_plot(study_dir: Path) -> None:
    files = write_report(study_dir)
    markdown = files.markdown.read_text(encoding="utf-8")
    page = files.html.read_text(encoding="utf-8")

    standard_test = f"{np.mean([70.0, 5.0, 72.0]):.2f} ± {np.std([70.0, 5.0, 72.0], ddof=1):.2f}"
    standard_row = next(
        line for line in markdown.splitlines() if line.startswith("| tiny | BIOSSES | standard |")
    )
    assert "lr 3e-05, batch 16*, epochs 3*" in standard_row
    assert "| 3 | 1 | 0 | 0 |" in standard_row and standard_test in standard_row
    assert "| tiny | BIOSSES | reinit1 | 61.00 ± 1.00 | 0/3 | 2 |" in markdown
    assert "s0: 70.00, s1: 5.00 (failed), s2: 72.00" in markdown
    assert "10 done, 2 failed, 1 raised an error, 1 running, 10 queued" in markdown
    assert "not finished" in markdown
    assert "DataError: GAD/train.tsv:3: bad label | 1 | GAD |" in markdown
    assert "| -33 pts |" in markdown
    assert "BLURB score needs at least one dataset of each" in markdown

    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert standard_test in page and '<img src="seeds_BIOSSES.png"' in page
    assert [p.name for p in files.plots] == ["seeds_BIOSSES.png"]  # GAD has no score to plot yet
    png = files.plots[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # something is drawn


def test_report_reads_a_store_that_a_study_is_writing(study_dir: Path) -> None:
    with StudyStore(study_dir) as writer:
        running = writer.runs(RunStatus.RUNNING)[0]
        writer.finish(RunOutcome(running.run_id, OK, 70.0, 71.0, {}))
        writer._db.execute("BEGIN IMMEDIATE")  # the study is in the middle of its next change
        writer._db.execute("UPDATE runs SET status = 'running' WHERE status = 'queued'")
        files = write_report(study_dir)
        writer._db.execute("ROLLBACK")
    assert "11 done, 2 failed, 1 raised an error, 0 running, 10 queued" in files.markdown.read_text("utf-8")
    assert [c.test.mean for c in files.cells if c.dataset == "GAD" and c.test.n] == [71.0]


def test_blurb_score_per_model_and_technique_when_every_type_is_there(tmp_path: Path) -> None:
    datasets = ["BC5CDR-chem", "NCBI-disease", "ebmnlp", "GAD", "BIOSSES", "HoC", "BioASQ"]
    scores = dict(zip(datasets, [80.0, 70.0, 40.0, 60.0, 20.0, 50.0, 30.0], strict=True))
    runs = grid(datasets, seeds=1, learning_rates=[1e-5])
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        for run in runs:
            bump = 10.0 if run.technique == "reinit1" else 0.0
            finish(store, run, OK, 1.0, scores[run.dataset] + bump)
        cells = summarize_cells(store.runs())
    by_technique = {row.technique: row.score for row in blurb_rows(cells)}
    expected = np.mean([75.0, 40.0, 60.0, 20.0, 50.0, 30.0])  # NER is the mean of its two datasets
    assert by_technique["standard"].score == pytest.approx(expected)
    assert by_technique["reinit1"].score == pytest.approx(expected + 10.0)
    markdown = write_report(tmp_path).markdown.read_text(encoding="utf-8")
    assert f"| tiny | standard | {expected:.2f} | 75.00 |" in markdown


def test_report_on_a_folder_without_a_study_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no study here"):
        write_report(tmp_path)


def test_report_shows_what_doing_nothing_scores(tmp_path: Path) -> None:
    runs = grid(["BIOSSES"], seeds=1, learning_rates=[1e-5])
    baseline = Baselines(
        trivial={"dev": split(0.0), "test": split(0.0)},
        zero_shot_cosine={"dev": split(73.04), "test": split(84.71)},
    )
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        for run in runs:
            store.mark_running(run.run_id, "test")
            figures = StoredRunMetrics(dev=split(75.0), test=split(86.0), baseline=baseline)
            store.finish(RunOutcome(run.run_id, OK, 75.0, 86.0, figures.model_dump(mode="json"), None, False))
    files = write_report(tmp_path)
    text = files.markdown.read_text()
    assert "Baselines: what doing nothing scores" in text
    assert "| tiny | BIOSSES | zero-shot cosine (no training) | 73.04 | 84.71 |" in text
    assert "| tiny | BIOSSES | trivial predictor | 0.00 | 0.00 |" in text
    assert files.plots and matplotlib.image.imread(files.plots[0]).shape[0] > 100


def test_best_model_is_the_best_mean_dev_cell_best_seed_not_a_lucky_seed(tmp_path: Path) -> None:
    from biotune.report.tables import best_models

    results = {
        "standard": [(OK, 77.0, 87.0), (OK, 77.1, 87.5), (OK, 76.9, 87.2)],
        "reinit1": [(OK, 75.0, 72.0), (OK, 77.5, 71.5), (OK, 74.0, 73.0)],  # the single best dev seed
    }
    runs = grid(["BIOSSES"], learning_rates=[1e-5])
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        for run in runs:
            finish(store, run, *results[run.technique][run.seed])
        cells = summarize_cells(store.runs())
    (best,) = best_models(cells)
    assert (best.run.technique, best.run.seed, best.run.dev_score) == ("standard", 1, 77.1)


def test_statistics_compare_at_the_same_setting_and_call_three_seeds_thin(study_dir: Path) -> None:
    from biotune.report.statistics import technique_comparisons

    with StudyStore(study_dir, read_only=True) as store:
        cells = summarize_cells(store.runs())
    (comparison,) = [c for c in technique_comparisons(cells) if c.dataset == "BIOSSES"]
    # reinit1's selected lr 1e-5 against standard's seeds at lr 1e-5, not standard's selected lr 3e-5
    assert comparison.hyperparameters["learning_rate"] == 1e-5
    assert comparison.numbers.reference.scores == (40.0, 50.0, 60.0)
    assert comparison.numbers.technique.scores == (60.0, 61.0, 62.0)
    assert comparison.numbers.mean_difference == pytest.approx(11.0)
    markdown = write_report(study_dir).markdown.read_text(encoding="utf-8")
    assert "## Statistics against standard" in markdown and "## Findings" in markdown
    assert "| tiny | BIOSSES | reinit1 | lr 1e-05, batch 16*, epochs 3* | 3 / 3 | +11.00 |" in markdown
    assert (
        "reinit1 on BIOSSES: 3 seeds against 3 for standard, fewer than 5 per cell, so the evidence is thin"
        in markdown
    )


def test_report_findings_state_only_the_supported_change(tmp_path: Path) -> None:
    # standard: 4 of 6 seeds collapse; reinit1: none. Six seeds support the higher mean, but neither
    # Brown-Forsythe (p 0.14: the median-centred test is robust to the two clusters) nor Fisher (4/6 against
    # 0/6: p 0.06) supports more.
    results = {
        "standard": [(FAILED, 1.0, 2.0), (OK, 80.0, 80.0), (FAILED, 1.0, 1.0)] * 2,
        "reinit1": [(OK, 82.0, 81.0), (OK, 82.5, 82.0), (OK, 81.0, 80.5)] * 2,
    }
    runs = grid(["BIOSSES"], seeds=6, learning_rates=[1e-5])
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        for run in runs:
            finish(store, run, *results[run.technique][run.seed])
    markdown = write_report(tmp_path).markdown.read_text(encoding="utf-8")
    assert "| tiny | BIOSSES | reinit1 | lr 1e-05, batch 16*, epochs 3* | 6 / 6 | +53.50 |" in markdown
    assert "| 0.68 / 40.54 | 0.14 | 0/6 / 4/6 | -67 pts | 0.06 |" in markdown
    findings_text = markdown.split("## Findings", 1)[1].split("\n## ", 1)[0]
    (sentence,) = [line for line in findings_text.splitlines() if line.startswith("reinit1")]
    assert re.fullmatch(
        r"reinit1 helped on BIOSSES: it raised the mean test score from 27\.7 \(standard\) to 81\.2 "
        r"\(difference \+53\.5, 95% CI \+\d+\.\d to \+\d+\.\d\)\.",
        sentence,
    )
