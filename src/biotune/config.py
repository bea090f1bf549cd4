"""Run configuration: one pydantic model, validated up front; YAML in/out; unknown keys are an error.

`TrainConfig` is what a user writes (flags or YAML); values left as None are filled from the
dataset registry (Gu et al. protocol) by `biotune.runs.resolve_config` before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from biotune.device import Precision
from biotune.errors import ConfigError

# The task types TrainConfig accepts; biotune.tasks.TASK_TYPES (the registry) is checked against it on import.
TaskType = Literal["ner", "pico", "re", "similarity", "classification", "multilabel", "qa"]
# own files' formats (biotune.data.readers.FILE_FORMATS lists the same, checked there on import)
FileFormat = Literal["auto", "tsv", "jsonl", "csv", "conll", "json"]
DEFAULT_MODEL = "minilm-l6"


def _seed_count(value: Any) -> Any:
    """`seeds: 3` means seeds 0, 1, 2."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"a seed count must be at least 1, got {value}")
        return list(range(value))
    return value


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if not seeds:
        raise ValueError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


Seeds = Annotated[list[int], BeforeValidator(_seed_count), AfterValidator(_distinct_seeds)]


class TrainConfig(BaseModel):
    """Everything one `biotune train` needs. None means: take the dataset's registry default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    dataset: str | None = Field(
        None, description="BLURB dataset name or alias (see `biotune datasets`); or give train/dev/test files"
    )
    data_dir: Path | None = Field(None, description="data home; default $BIOTUNE_DATA, else ../shared/data")
    train_file: Path | None = Field(None, description="own data: training file")
    dev_file: Path | None = Field(None, description="own data: dev file")
    test_file: Path | None = Field(None, description="own data: test file")
    file_format: FileFormat = Field(
        "auto",
        description="own files' format: auto (told by extension and content), tsv (BLURB's layouts), "
        "jsonl or csv (Hugging Face examples' columns: tokens + ner_tags; sentence or text + label; "
        "sentence1 + sentence2 + label; question + context + label), conll (NER: columns, the tag last), "
        "json (PubMedQA's layout)",
    )
    tag_names: list[str] | None = Field(
        None,
        description="own NER/PICO files whose ner_tags are integers: the tag of each index in order, "
        "e.g. O,B-Disease,I-Disease (a Hugging Face dataset's features['ner_tags'].feature.names)",
    )
    task_type: TaskType | None = Field(None, description="required with own files")
    negative_label: str | None = Field(
        None, description="own relation-extraction files: the no-relation label"
    )
    model: str = Field(DEFAULT_MODEL, description="hub name, local folder, or alias minilm-l6")
    seeds: Seeds = Field(
        default_factory=lambda: [0, 1, 2], description="a count (3 = seeds 0,1,2) or a list (1,5,7)"
    )
    techniques: list[str] = Field(
        default_factory=list,
        description="repeatable: freeze:K, llrd:D, reinit:K, mixout:P, pretrained-decay:L, "
        "no-bias-correction, warmup:R, longer:F, early-stop:P, standard",
    )
    learning_rate: float | None = Field(None, gt=0, description="peak learning rate; default: the registry's")
    batch_size: int | None = Field(
        None, ge=1, description="examples per optimizer step; default: the registry's"
    )
    epochs: int | None = Field(None, ge=1, description="training epochs; default: the registry's")
    warmup_ratio: float | None = Field(
        None, ge=0, le=1, description="share of steps with a linear warmup; default: the registry's"
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and LayerNorm)")
    max_length: int | None = Field(None, ge=8, description="tokens per input; default: the registry's")
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without dev improvement")
    limit_train: int | None = Field(None, ge=1, description="use only the first N training examples")
    pooling: Literal["cls", "mean"] | None = Field(None, description="sequence-level heads; BLURB uses cls")
    pair_encoding: Literal["cross", "siamese"] | None = Field(
        None,
        description="similarity: cross (BLURB, one joint input) or siamese (each sentence alone, cosine)",
    )
    checkpoint: Literal["best", "last"] = Field("best", description="keep the best-dev or the last epoch")
    gradient_accumulation: int = Field(
        1, ge=1, description="split each batch into N micro-batches: the same step, less memory"
    )
    max_grad_norm: float = Field(1.0, gt=0, description="clip the gradient norm to this")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="hidden and attention dropout; default: the model's own"
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    precision: Precision = Field(
        "fp32",
        description="fp32, bf16 (autocast, fp32 master weights), fp16 (+ loss scaling), tf32 (CUDA), "
        "or auto (bf16 where the device computes it natively, else fp32)",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, about 30% more time"
    )
    trust_remote_code: bool = Field(False, description="allow model code from the model folder/hub")
    save_model: bool = Field(
        True, description="keep each seed's selected model (safetensors) for export/predict"
    )
    output: Path | None = Field(None, description="run folder; default: runs/<dataset>")
    report_to: list[str] = Field(
        default_factory=list,
        description="experiment tracking, e.g. tensorboard,mlflow (none by default); needs "
        "`pip install 'biotune[tracking]'`; MLflow logs to $MLFLOW_TRACKING_URI or its local default",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_parse(cls, value: Any) -> Any:
        from biotune.tracking import parse_report_to

        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value  # pydantic names the wrong type
        # `report_to: mlflow` and `--report-to tensorboard,mlflow` as well as a list; raises ValueError
        return parse_report_to(value)

    @field_validator("tag_names", mode="before")
    @classmethod
    def _tag_names_parse(cls, value: Any) -> Any:
        # `--tag-names O,B-Disease,I-Disease` as well as a list
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
            if len(set(value)) != len(value):
                raise ValueError(f"tag names must be distinct, got {value}")
        return value

    @field_validator("techniques")
    @classmethod
    def _techniques_parse(cls, techniques: list[str]) -> list[str]:
        from biotune.techniques import parse_techniques

        # canonical order and case; raises ValueError with the fix
        return parse_techniques(techniques).as_list()


def parse_seeds(text: str) -> list[int]:
    """`--seeds 3` means seeds 0,1,2; `--seeds 1,5,7` means exactly those."""
    text = text.strip()
    try:
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        count = int(text)
    except ValueError as exc:
        raise ConfigError(f"--seeds takes a count (3) or a list (1,5,7), got {text!r}") from exc
    if count < 1:
        raise ConfigError(f"--seeds count must be at least 1, got {count}")
    return list(range(count))


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key (remove it or fix its spelling)")
        else:
            lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    """Safe YAML (no Python objects); the top level must be a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of option: value")
    return data


def build_config(model_cls: type[BaseModel], values: dict[str, Any], source: str) -> Any:
    try:
        return model_cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def load_train_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """YAML file first, then flags (non-None overrides) on top; unknown keys fail in either."""
    values: dict[str, Any] = read_yaml(path) if path else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_config(TrainConfig, values, str(path) if path else "options")


def dump_yaml(config: BaseModel, path: Path) -> None:
    data = config.model_dump(mode="json")
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
