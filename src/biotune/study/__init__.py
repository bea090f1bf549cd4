"""Stability studies: grid expansion, the SQLite store, runners (local, ray), resume.

from biotune.study import run_study
result = run_study(Path("examples/quick.yaml"), Path("runs/quick"))
summary = recommend("BIOSSES", model="minilm-l6", budget="30m")   # a recipe search (needs optuna)
"""

from biotune.study.grid import RunSpec, expand_grid
from biotune.study.orchestrate import StudyProgress, StudyResult, default_output, plan_study, run_study
from biotune.study.records import RunOutcome, RunRecord, RunStatus
from biotune.study.runners import LocalRunner, RayRunner, make_runner
from biotune.study.search import SearchSummary, recommend, run_search
from biotune.study.spec import StudyConfig, load_study
from biotune.study.store import StudyStore

__all__ = [
    "LocalRunner",
    "RayRunner",
    "RunOutcome",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "SearchSummary",
    "StudyConfig",
    "StudyProgress",
    "StudyResult",
    "StudyStore",
    "default_output",
    "expand_grid",
    "load_study",
    "make_runner",
    "plan_study",
    "recommend",
    "run_search",
    "run_study",
]
