"""`biotune evaluate`: score a finished run again, from its saved predictions or by re-running its models.

Re-scoring predictions checks the metric (and lets a metric fix reach old runs); re-running the saved
models checks that what was saved is what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biotune import metrics
from biotune.data.loading import DatasetSplits, load_dataset, load_own_files
from biotune.data.paths import resolve_data_dir
from biotune.errors import ConfigError
from biotune.run_folder import RunResults, read_results, seed_folder, seed_model_folder
from biotune.tasks import task_class

SPLITS = ("dev", "test")


def _score(results: RunResults, gold: list[Any], predicted: list[Any]) -> dict[str, Any]:
    if not results.own_files:
        return metrics.compute(results.dataset, gold, predicted)
    return metrics.compute_for_task(results.task_type, gold, predicted, results.negative_label)


def rescore_predictions(run_dir: Path, split: str = "test") -> dict[str, Any]:
    """Every seed's saved `predictions_<split>.jsonl` scored again with the BLURB metric."""
    if split not in SPLITS:
        raise ConfigError(f"split must be dev or test, got {split!r}")
    results = read_results(run_dir)
    task = task_class(results.task_type)
    scores: dict[str, Any] = {}
    for seed in results.seeds:
        path = seed_folder(run_dir, seed.seed) / f"predictions_{split}.jsonl"
        if not path.is_file():
            continue
        # split on "\n" only: predictions are written with ensure_ascii=False, and ids may hold U+2028
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        gold = [task.from_json(row["gold"]) for row in rows]
        predicted = [task.from_json(row["pred"]) for row in rows]
        scores[str(seed.seed)] = _score(results, gold, predicted)
    return {"dataset": results.dataset, "split": split, "source": "predictions", "seeds": scores}


def _splits_of(results: RunResults) -> DatasetSplits:
    config = results.config
    if not results.own_files:
        return load_dataset(config["dataset"], resolve_data_dir(config.get("data_dir")))
    return load_own_files(
        results.task_type,
        Path(config["train_file"]),
        Path(config["dev_file"]),
        Path(config["test_file"]) if config.get("test_file") else None,
        negative_label=config.get("negative_label"),
    )


def rescore_models(run_dir: Path, split: str = "test") -> dict[str, Any]:
    """Every seed's saved model run again on the split's data and scored."""
    from biotune.device import inference_recipe
    from biotune.inference import predict_outputs
    from biotune.models import load_saved_model
    from biotune.tasks import TaskOptions, get_task

    if split not in SPLITS:
        raise ConfigError(f"split must be dev or test, got {split!r}")
    results = read_results(run_dir)
    examples = getattr(_splits_of(results), split)
    if not examples:
        raise ConfigError(f"{run_dir}: the run has no {split} data to evaluate on")
    config = results.config
    recipe = inference_recipe(config.get("device", "auto"), config.get("precision", "fp32"))
    scores: dict[str, Any] = {}
    for seed in results.seeds:
        folder = seed_model_folder(run_dir, seed.seed)
        if not folder.is_dir():
            continue
        model, tokenizer, card = load_saved_model(folder)
        options = TaskOptions(pair_encoding=card.pair_encoding)
        task = get_task(card.task_type, card.labels, card.negative_label, options)
        features = task.featurize(examples, tokenizer, card.max_length)
        outputs = predict_outputs(
            model.to(recipe.device), features, task.head, tokenizer.pad_token_id or 0, recipe
        )
        scores[str(seed.seed)] = _score(
            results, task.gold(examples), task.decode(examples, features, outputs)
        )
    if not scores:
        raise ConfigError(f"{run_dir}: no saved model in any seed folder (the run used --no-save-model)")
    return {"dataset": results.dataset, "split": split, "source": "models", "seeds": scores}
