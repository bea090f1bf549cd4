"""Many seeds of one configuration: resolve the config, featurize once, train each seed, write the run folder.

A run folder is self-describing:
    config.yaml                   the fully resolved configuration
    results.json                  dataset, model, techniques, versions, per-seed dev/test metrics, summary,
                                  baselines, featurization counts
    train.log                     the log
    seed-<N>/metrics.json         that seed's epochs (train loss, dev score), dev/test metrics, status
    seed-<N>/predictions_<split>.jsonl   id, source line, gold, prediction (examples' own units)
    seed-<N>/model/               the selected checkpoint (safetensors) with its own config (--save-model)

results.json, metrics.json and biotune_model.json are written through their models in run_folder.py.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from biotune import __version__, baselines
from biotune.config import TrainConfig, dump_yaml
from biotune.data.loading import DatasetSplits, load_dataset, load_own_files
from biotune.data.paths import resolve_data_dir
from biotune.data.readers import ReadOptions
from biotune.device import recipe_for, refuse_distributed
from biotune.errors import ConfigError
from biotune.inference import SplitData, Throughput
from biotune.models import FP32, load_tokenizer, model_load_error, resolve_model_path, save_model
from biotune.resources import PeakMemory
from biotune.run_folder import (
    RESULTS_FILE,
    SEED_METRICS_FILE,
    Baselines,
    DeviceRecord,
    FeaturizationCounts,
    MemoryRecord,
    ModelCard,
    RunResults,
    SeedMetricsFile,
    SeedResult,
    SplitMetrics,
    Summary,
    ThroughputRecord,
    seed_folder,
    write_file,
)
from biotune.tasks import TaskOptions, add_placeholder_tokens, placeholder_pieces, task_class, task_for_spec
from biotune.techniques import parse_techniques, validate_plan
from biotune.tracking import RunTracking, check_available, start_tracking
from biotune.training import EpochHook, RunContext, SeedOutcome, train_seed

log = logging.getLogger("biotune")


# A small corpus under the own-file defaults (3 epochs, batch 16) gets too few optimizer steps to learn: a
# 120-sentence NER corpus gets 24 and reaches about 25 entity F1, with biotune and a plain Trainer alike,
# where 10 epochs (80 steps) reach 100 (../shared/BLURB.md, "Measured"). So own files' default epochs rise
# until a run has at least MIN_OPTIMIZER_STEPS steps (at most OWN_DATA_MAX_EPOCHS epochs), and any run with
# fewer steps says so before training.
MIN_OPTIMIZER_STEPS = 100
OWN_DATA_MAX_EPOCHS = 30


@dataclass
class PreparedRun:
    config: TrainConfig
    splits: DatasetSplits
    notes: list[str] = field(default_factory=list)


def optimizer_steps(examples: int, batch_size: int, epochs: int) -> int:
    """About how many steps a run takes (token-budget batches hold `batch_size` examples on average)."""
    return math.ceil(examples / batch_size) * epochs


def enough_steps(
    examples: int, batch_size: int, epochs: int, epochs_given: bool, own_files: bool
) -> tuple[int, list[str]]:
    """The epochs to train and what to tell the user: more epochs for a small own corpus when the user
    left them to the default, a warning whenever an own-files run stays under MIN_OPTIMIZER_STEPS."""
    notes: list[str] = []
    steps = optimizer_steps(examples, batch_size, epochs)
    if own_files and not epochs_given and steps < MIN_OPTIMIZER_STEPS:
        per_epoch = math.ceil(examples / batch_size)
        raised = min(OWN_DATA_MAX_EPOCHS, max(epochs, math.ceil(MIN_OPTIMIZER_STEPS / per_epoch)))
        if raised != epochs:
            notes.append(
                f"epochs raised from the default {epochs} to {raised}: {examples} training examples in "
                f"batches of {batch_size} would get only {steps} optimizer steps, too few to learn "
                f"(now {per_epoch * raised}); set --epochs to choose yourself"
            )
            epochs, steps = raised, per_epoch * raised
    if own_files and steps < MIN_OPTIMIZER_STEPS:  # registry datasets follow their published protocol
        notes.append(
            f"only {steps} optimizer steps ({examples} training examples, batch {batch_size}, {epochs} "
            f"epochs): small corpora under-train below about {MIN_OPTIMIZER_STEPS}; raise --epochs or "
            "lower --batch-size"
        )
    return epochs, notes


def load_splits(config: TrainConfig) -> DatasetSplits:
    if config.dataset and config.train_file:
        raise ConfigError("give either a dataset name or --train-file/--dev-file, not both")
    if config.dataset:
        if config.file_format != "auto" or config.tag_names:
            raise ConfigError(
                "file_format and tag_names are for own files (--train-file ...); a BLURB dataset is read "
                "in its own layout: drop them"
            )
        data_dir = resolve_data_dir(config.data_dir)
        return load_dataset(config.dataset, data_dir)
    if config.train_file:
        if config.task_type is None:
            raise ConfigError(
                "own files need --task-type (ner, pico, re, similarity, classification, multilabel, qa)"
            )
        return load_own_files(
            config.task_type,
            config.train_file,
            config.dev_file,
            config.test_file,
            negative_label=config.negative_label,
            options=ReadOptions(config.file_format, tuple(config.tag_names) if config.tag_names else None),
        )
    raise ConfigError("nothing to train on: give a dataset name (see `biotune datasets`) or --train-file")


def resolve_config(config: TrainConfig) -> PreparedRun:
    """Fill every None from the dataset's registry defaults; validate everything before any work."""
    refuse_distributed()
    check_available(config.report_to)  # a tracking package that is not installed: fail before any work
    recipe = recipe_for(config.device, config.precision)  # a device or precision it can't run: fail now
    splits = load_splits(config)
    spec = splits.spec
    values = config.model_dump()
    own = not config.dataset
    # own files' specs carry their task type's defaults (biotune.tasks: own_hyperparams, own_max_length)
    for key in ("batch_size", "learning_rate", "epochs", "warmup_ratio"):
        if values[key] is None:
            values[key] = getattr(spec.defaults, key)
    if values["max_length"] is None:
        values["max_length"] = spec.max_length
    if values["pair_encoding"] is None:
        values["pair_encoding"] = "cross"
    if values["pair_encoding"] == "siamese":
        if not task_class(spec.task_type).compares_sentence_pairs:
            raise ConfigError(
                f"pair_encoding siamese is for similarity tasks; {spec.name} is {spec.task_type}"
            )
        if values["pooling"] == "cls":
            raise ConfigError(
                "pair_encoding siamese compares mean-pooled sentence embeddings: drop pooling cls"
            )
        values["pooling"] = "mean"
    if values["pooling"] is None:
        values["pooling"] = "cls"
    values["dataset"] = spec.name if not own else None
    values["task_type"] = spec.task_type
    values["precision"] = recipe.precision  # `auto` as it resolved here, so config.yaml says what ran
    if values["batch_size"] % values["gradient_accumulation"]:
        raise ConfigError(
            f"batch_size {values['batch_size']} is not a multiple of gradient_accumulation "
            f"{values['gradient_accumulation']}: choose values so that one divides the other"
        )
    if not splits.train:
        raise ConfigError(f"{spec.name}: the training split is empty")
    if config.limit_train is not None:
        splits.train = list(splits.train[: config.limit_train])
    values["epochs"], notes = enough_steps(
        len(splits.train), values["batch_size"], values["epochs"], config.epochs is not None, own
    )
    resolved = TrainConfig.model_validate(values)
    for note in notes:
        log.warning("%s", note)
    return PreparedRun(resolved, splits, notes)


def versions() -> dict[str, str]:
    import transformers

    return {
        "biotune": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "threads": str(torch.get_num_threads()),
    }


def num_encoder_layers(model_name: str, trust_remote_code: bool) -> int:
    from transformers import AutoConfig

    path = resolve_model_path(model_name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:  # not found offline, not a model folder, custom code
        raise model_load_error("model", model_name, exc) from exc
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"cannot tell how many layers model {model_name!r} has")


def build_context(prepared: PreparedRun) -> RunContext:
    config, splits = prepared.config, prepared.splits
    spec = splits.spec
    assert config.max_length is not None
    plan = parse_techniques(config.techniques)
    validate_plan(plan, num_encoder_layers(config.model, config.trust_remote_code))
    task = task_for_spec(spec, TaskOptions(pair_encoding=config.pair_encoding or "cross"))
    tokenizer = load_tokenizer(config.model, config.trust_remote_code)
    # every split: a user's dev/test file may hold a placeholder that train lacks
    placeholders = task.special_tokens([*splits.train, *splits.dev, *splits.test])
    before = placeholder_pieces(tokenizer, placeholders)
    pieces = {token: before[token] for token in add_placeholder_tokens(tokenizer, placeholders)}

    def featurize(examples: Sequence[Any]) -> SplitData:
        return SplitData(examples, task.featurize(examples, tokenizer, config.max_length))

    train = featurize(splits.train)
    dev = featurize(splits.dev)
    test = featurize(splits.test) if splits.test else None
    trivial_dev = float(baselines.trivial_scores(task, spec, splits.train, splits.dev)["score"])
    target_mean = task.train_target_mean(splits.train)
    return RunContext(
        config=config,
        spec=spec,
        task=task,
        tokenizer=tokenizer,
        train=train,
        dev=dev,
        test=test,
        plan=plan,
        added_token_pieces=pieces,
        trivial_dev_score=trivial_dev,
        recipe=recipe_for(config.device, config.precision),
        train_target_mean=target_mean,
    )


def baseline_report(ctx: RunContext) -> Baselines:
    """Trivial baseline (and zero-shot cosine for similarity) on dev and test, next to every result."""
    splits = {"dev": ctx.dev, "test": ctx.test}
    trivial = {
        name: SplitMetrics.model_validate(
            baselines.trivial_scores(ctx.task, ctx.spec, ctx.train.examples, split.examples)
        )
        for name, split in splits.items()
        if split is not None
    }
    if not ctx.task.compares_sentence_pairs:
        return Baselines(trivial=trivial)
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(
        resolve_model_path(ctx.config.model), trust_remote_code=ctx.config.trust_remote_code, **FP32
    )
    zero_shot = {
        name: SplitMetrics.model_validate(
            baselines.zero_shot_similarity(
                encoder, ctx.tokenizer, split.examples, ctx.spec, ctx.config.max_length or 128
            )
        )
        for name, split in splits.items()
        if split is not None
    }
    return Baselines(trivial=trivial, zero_shot_cosine=zero_shot)


def summarize(seeds: Sequence[SeedResult], split: Literal["dev", "test"]) -> Summary:
    """Mean, sample std (n-1), min, max of the primary score over the successful seeds.

    The std of one seed is None: a single score has no spread (printed as `n/a`)."""
    scores = [score for s in seeds if s.ok and (score := s.score(split)) is not None]
    failed = sum(1 for s in seeds if not s.ok)
    if not scores:
        return Summary(split=split, mean=None, std=None, min=None, max=None, n_ok=0, failed=failed)
    return Summary(
        split=split,
        mean=statistics.fmean(scores),
        std=statistics.stdev(scores) if len(scores) > 1 else None,
        min=min(scores),
        max=max(scores),
        n_ok=len(scores),
        failed=failed,
    )


def baseline_warnings(summary: Summary, baseline: Baselines, pair_encoding: str | None) -> list[str]:
    """Say so when fine-tuning lost to doing nothing: a mean score at or below a baseline's."""
    split, mean = summary.split, summary.mean
    if mean is None:
        return []
    warnings: list[str] = []
    zero_shot_split = (baseline.zero_shot_cosine or {}).get(split)
    zero_shot = zero_shot_split.score if zero_shot_split else None
    if zero_shot is not None and mean <= zero_shot:
        hint = ""
        if pair_encoding != "siamese":
            hint = "; for sentence-embedding models try --pair-encoding siamese"
        warnings.append(
            f"mean {split} score {mean:.2f} is not above the untrained model's zero-shot cosine "
            f"{zero_shot:.2f}: fine-tuning made this model worse{hint}"
        )
    trivial_split = baseline.trivial.get(split)
    trivial = trivial_split.score if trivial_split else None
    if trivial is not None and mean <= trivial:
        warnings.append(f"mean {split} score {mean:.2f} is not above the trivial baseline {trivial:.2f}")
    return warnings


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def throughput_record(meter: Throughput) -> ThroughputRecord:
    """Seconds, real tokens and computed positions of training and evaluation, with their rates."""
    return ThroughputRecord(
        train_seconds=round(meter.train_seconds, 3),
        train_tokens=meter.train_tokens,
        train_positions=meter.train_positions,
        eval_seconds=round(meter.eval_seconds, 3),
        eval_tokens=meter.eval_tokens,
        eval_positions=meter.eval_positions,
        train_tokens_per_s=round(meter.train_tokens / meter.train_seconds, 1)
        if meter.train_seconds
        else None,
        eval_tokens_per_s=round(meter.eval_tokens / meter.eval_seconds, 1) if meter.eval_seconds else None,
    )


def write_seed(
    ctx: RunContext, outcome: SeedOutcome, folder: Path, memory: dict[str, Any] | None = None
) -> SeedResult:
    folder.mkdir(parents=True, exist_ok=True)
    record = SeedResult(
        seed=outcome.seed,
        status=outcome.status,
        error=outcome.error,
        best_epoch=outcome.best_epoch,
        train_seconds=round(outcome.train_seconds, 3),
        history=outcome.history,  # dicts, validated into EpochRecords
        throughput=throughput_record(outcome.throughput),
        memory=MemoryRecord.model_validate(memory) if memory else None,
        dev=SplitMetrics.model_validate(outcome.dev.metrics) if outcome.dev else None,
        test=SplitMetrics.model_validate(outcome.test.metrics) if outcome.test else None,
    )
    for split, evaluation, data in (("dev", outcome.dev, ctx.dev), ("test", outcome.test, ctx.test)):
        if evaluation is not None and data is not None:
            rows = ctx.task.prediction_records(data.examples, evaluation.predictions)
            _write_jsonl(folder / f"predictions_{split}.jsonl", rows)
    write_file(folder / SEED_METRICS_FILE, SeedMetricsFile.model_validate(record.model_dump()))
    if ctx.config.save_model and outcome.model is not None:
        assert ctx.config.pooling is not None and ctx.config.pair_encoding is not None  # resolve_config's
        assert ctx.config.max_length is not None
        card = ModelCard(
            head=ctx.task.head,
            task_type=ctx.task.task_type,
            labels=list(ctx.task.labels),
            negative_label=getattr(ctx.spec, "negative_label", None),
            pooling=ctx.config.pooling,
            pair_encoding=ctx.config.pair_encoding,
            max_length=ctx.config.max_length,
            dataset=ctx.spec.name,
            seed=outcome.seed,
            techniques=list(ctx.config.techniques),
            config=ctx.config.model_dump(mode="json"),
            versions=versions(),
        )
        save_model(outcome.model, ctx.tokenizer, folder / "model", card)
    return record


class _FileLog:
    """Attach a file handler to the `biotune` logger for the duration of a run."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def __enter__(self) -> None:
        log.addHandler(self.handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        log.removeHandler(self.handler)
        self.handler.close()


def run_training(
    config: TrainConfig,
    output_dir: Path,
    progress: bool = False,
    tracking: RunTracking | None = None,
    on_epoch: EpochHook | None = None,
) -> RunResults:
    """Train every seed of `config` and write the run folder; returns results.json's content (its model).

    With `report_to`, each seed is also logged to TensorBoard/MLflow (`tracking`: a study's experiment
    and tags); tracking never changes the training. `on_epoch` sees each dev evaluation after tracking
    logged it; what it raises (a search's `RunPruned`) stops the run and passes through."""
    prepared = resolve_config(config)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = prepared.config.model_copy(update={"output": output_dir})
    prepared = PreparedRun(resolved, prepared.splits, prepared.notes)
    dump_yaml(resolved, output_dir / "config.yaml")
    with _FileLog(output_dir / "train.log"):
        started = time.time()
        ctx = build_context(prepared)
        log.info(
            "run: dataset %s, model %s, techniques %s, seeds %s",
            ctx.spec.name,
            resolved.model,
            ctx.plan.label,
            resolved.seeds,
        )
        run = _RunHeader(
            dataset=ctx.spec.name,
            task_type=ctx.task.task_type,
            labels=list(ctx.task.labels),
            negative_label=getattr(ctx.spec, "negative_label", None),
            model=resolved.model,
            techniques=list(resolved.techniques),
            technique_label=ctx.plan.label,
            config=resolved.model_dump(mode="json"),
            versions=versions(),
            device=DeviceRecord.model_validate(ctx.recipe.describe()),
            featurization={
                name: FeaturizationCounts(
                    examples=split.features.n_examples,
                    features=len(split.features.features),
                    truncated=split.features.n_truncated,
                    split_into_windows=split.features.n_split,
                )
                for name, split in (("train", ctx.train), ("dev", ctx.dev), ("test", ctx.test))
                if split
            },
            baseline=baseline_report(ctx),
            notes=list(prepared.notes),
        )
        seeds: list[SeedResult] = []
        tracker = start_tracking(resolved.report_to, tracking, output_dir)
        tags = {"model": resolved.model, "dataset": ctx.spec.name, "technique": ctx.plan.label}
        epoch_hooks = [hook for hook in (tracker.log_epoch if tracker else None, on_epoch) if hook]

        def each_epoch(*values: Any) -> None:
            for epoch_hook in epoch_hooks:
                epoch_hook(*values)

        with _progress(progress) as hook:
            for seed in resolved.seeds:
                if tracker is not None:
                    tracker.start_seed(seed, run.config, tags)
                try:
                    with PeakMemory(ctx.device) as memory:
                        outcome = train_seed(
                            ctx, seed, on_step=hook, on_epoch=each_epoch if epoch_hooks else None
                        )
                except BaseException:  # out of memory, Ctrl-C: the tracked run ends as failed, not running
                    if tracker is not None:
                        tracker.finish_seed({"seed": seed, "status": "failed"})
                    raise
                record = write_seed(ctx, outcome, seed_folder(output_dir, seed), memory.record())
                if tracker is not None:
                    tracker.finish_seed(record.model_dump(mode="json"))
                seeds.append(record)
                outcome.model = None
                _write_results(run, seeds, output_dir, started)
        return _write_results(run, seeds, output_dir, started)


@dataclass
class _RunHeader:
    """What results.json says about the run before any seed has trained."""

    dataset: str
    task_type: str
    labels: list[str]
    negative_label: str | None
    model: str
    techniques: list[str]
    technique_label: str
    config: dict[str, Any]
    versions: dict[str, str]
    device: DeviceRecord
    featurization: dict[str, FeaturizationCounts]
    baseline: Baselines
    notes: list[str]


def _write_results(run: _RunHeader, seeds: list[SeedResult], output_dir: Path, started: float) -> RunResults:
    """results.json after each seed: the seeds so far and their summary."""
    summary = summarize(seeds, "test" if any(s.test for s in seeds) else "dev")
    results = RunResults(
        **vars(run),
        seeds=list(seeds),
        summary=summary,
        summary_dev=summarize(seeds, "dev"),
        warnings=[*run.notes, *baseline_warnings(summary, run.baseline, run.config.get("pair_encoding"))],
        wall_seconds=round(time.time() - started, 3),
    )
    write_file(output_dir / RESULTS_FILE, results)
    return results


class _progress:
    """A rich progress bar (epoch, step, loss, ETA) when asked for; otherwise no hook at all."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.task_id: Any = None
        self.seed: int | None = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]seed {task.fields[seed]}[/] epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.bar.__enter__()
        return self.update

    def update(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed:
            self.seed = state["seed"]
            self.task_id = self.bar.add_task(
                "train", total=state["total_steps"], seed=state["seed"], epoch="", loss=""
            )
        self.bar.update(
            self.task_id,
            completed=state["step"],
            epoch=f"{state['epoch']}/{state['epochs']}",
            loss=f"{state['loss']:.4f}",
        )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
