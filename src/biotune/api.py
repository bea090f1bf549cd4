"""The Python entry point: `biotune.load(path)` -> a `Predictor`, and which saved model a path means.

A path may be a run folder (results.json; the seed is chosen, `best` by default), a seed folder
(`seed-N`, holding `model/`), or a model folder (`seed-N/model` or an exported folder: biotune_model.json).
`best` is the seed with the highest dev score among the successful seeds that saved a model; ties go to the
seed trained first.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from biotune.errors import ConfigError
from biotune.models import BIOTUNE_MODEL_FILE
from biotune.predict import Predictor
from biotune.run_folder import RESULTS_FILE, RunResults, SeedResult, read_results, seed_model_folder

Seed = int | str


def parse_seed(seed: Seed) -> int | None:
    """`best` (None) or a seed number; `--seed` arrives as text."""
    if isinstance(seed, bool):
        raise ConfigError(f"seed must be 'best' or a seed number, got {seed!r}")
    if isinstance(seed, int):
        return seed
    text = str(seed).strip().lower()
    if text == "best":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"seed must be 'best' or a seed number, got {seed!r}") from None


def select_seed(run_dir: Path, seed: Seed = "best") -> int:
    """The seed of a run folder to use: the one asked for (it must have a saved model), or the best."""
    results = read_results(run_dir)
    records = {record.seed: record for record in results.seeds}
    with_model = [s for s in records if (seed_model_folder(run_dir, s) / BIOTUNE_MODEL_FILE).is_file()]
    wanted = parse_seed(seed)
    if wanted is not None:
        if wanted not in records:
            raise ConfigError(f"{run_dir}: no seed {wanted} in this run (seeds: {_names(records)})")
        if wanted not in with_model:
            raise ConfigError(
                f"{run_dir}: seed {wanted} has no saved model ({_why_no_model(results, records[wanted])})"
                f"; seeds with a model: {_names(with_model) or 'none'}"
            )
        return wanted
    candidates = [s for s in with_model if records[s].ok and _dev_score(records[s]) is not None]
    if not candidates:
        failed = [s for s in with_model if not records[s].ok]
        hint = (
            f"seed{'s' if len(failed) > 1 else ''} {_names(failed)} saved a model but failed; "
            "choose one with --seed N if you mean it"
            if failed
            else "no seed saved a model (the run was trained with --no-save-model); retrain it"
        )
        raise ConfigError(f"{run_dir}: no successful seed with a saved model to pick as 'best': {hint}")
    return max(candidates, key=lambda s: (_dev_score(records[s]), -candidates.index(s)))


def _dev_score(record: SeedResult) -> float | None:
    score = record.score("dev")
    return score if score is not None and math.isfinite(score) else None


def _why_no_model(results: RunResults, record: SeedResult) -> str:
    if not results.config.get("save_model", True):
        return "the run was trained with --no-save-model"
    if not record.ok:
        return f"it failed: {record.error}"
    return "its model folder is missing"


def _names(seeds: Any) -> str:
    return ", ".join(str(s) for s in seeds)


def resolve_model_folder(path: Path | str, seed: Seed = "best") -> Path:
    """The model folder a path means (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"{path}: no such folder; give a run folder, a seed-N folder or a model folder")
    if (path / RESULTS_FILE).is_file():
        return seed_model_folder(path, select_seed(path, seed))
    folder = path / "model" if (path / "model" / BIOTUNE_MODEL_FILE).is_file() else path
    if (folder / BIOTUNE_MODEL_FILE).is_file():
        if parse_seed(seed) is not None:
            raise ConfigError(f"{path} is one saved model; --seed chooses among the seeds of a run folder")
        return folder
    raise ConfigError(
        f"{path}: not a run folder (no {RESULTS_FILE}) nor a model folder (no {BIOTUNE_MODEL_FILE})"
    )


def load(
    path: Path | str,
    seed: Seed = "best",
    device: str = "auto",
    batch_size: int = 32,
    threshold: float = 0.5,
    backend: str = "auto",
) -> Predictor:
    """A trained model ready to predict, e.g.

    predictor = biotune.load("runs/NCBI-disease")            # the best seed of a run folder
    predictor.predict(["Mutations in BRCA1 cause breast cancer."])
    # [{"text": "Mutations in BRCA1 cause breast cancer.", "entities": [{"start": 30, ...}]}]

    backend: `auto` runs an exported model.onnx with onnxruntime where there is one, `torch` or `onnx`
    force one (see `Predictor.from_folder`).
    """
    return Predictor.from_folder(
        resolve_model_folder(path, seed),
        device=device,
        batch_size=batch_size,
        threshold=threshold,
        backend=backend,
    )
