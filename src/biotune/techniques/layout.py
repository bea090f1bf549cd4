"""Where a model's embeddings, encoder layers, pooler and head are, found from its structure.

No architecture names are hard-coded: the encoder layers are the longest nn.ModuleList of same-class
blocks inside the base model; the embeddings are the module holding the input word embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from biotune.errors import ConfigError


def under(name: str, prefix: str) -> bool:
    """True if parameter/module `name` is `prefix` itself or lives inside it ("" contains everything)."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


@dataclass(frozen=True)
class ModelLayout:
    """Parameter-name prefixes of each part of a model, and each part's depth.

    Depths follow ELECTRA's `_get_layer_lrs`: 0 = embeddings (plus every other base-model module
    outside the layers and the pooler, e.g. DeBERTa-v2's `encoder.rel_embeddings`/`encoder.LayerNorm`
    and ELECTRA's `embeddings_project`), encoder layer i (0-based) = i+1, pooler = L+1, and every
    parameter outside the base model (the task head) = L+2.
    """

    base_prefix: str
    embedding_prefixes: tuple[str, ...]
    layer_prefixes: tuple[str, ...]  # bottom to top
    pooler_prefix: str | None
    num_layers: int

    @property
    def head_depth(self) -> int:
        return self.num_layers + 2

    def depth_of(self, param_name: str) -> int:
        for index, prefix in enumerate(self.layer_prefixes):
            if under(param_name, prefix):
                return index + 1
        if self.pooler_prefix is not None and under(param_name, self.pooler_prefix):
            return self.num_layers + 1
        if any(under(param_name, prefix) for prefix in self.embedding_prefixes):
            return 0
        if not under(param_name, self.base_prefix):
            return self.head_depth
        raise ValueError(f"{param_name!r} is not a parameter of the model this layout was found for")


def _name_of(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules(remove_duplicate=False):
        if module is target:
            return name
    raise ConfigError(f"{type(target).__name__} is not a submodule of {type(model).__name__}")


def _encoder_layers(base: nn.Module) -> tuple[str, nn.ModuleList]:
    """The longest ModuleList whose entries are all one class; the first found wins a tie (outermost)."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in base.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(block) for block in module}) != 1:
            continue
        if best is None or len(module) > len(best[1]):
            best = (name, module)
    if best is None:
        raise ConfigError(
            f"cannot find the encoder layers of {type(base).__name__} "
            "(no nn.ModuleList of same-class blocks): use a transformer encoder model, "
            "or run with technique 'standard'"
        )
    return best


def _pooler_name(base: nn.Module) -> str | None:
    for name, child in base.named_children():
        if "pooler" in name.lower() and any(True for _ in child.parameters()):
            return name
    return None


def find_layout(model: nn.Module) -> ModelLayout:
    """Find the layout of a Hugging Face style model (`base_model`, `get_input_embeddings()`).

    The pooler is a base-model child named like "pooler" (BERT has one; ELECTRA has none; RoBERTa's
    sequence classifier drops it; DeBERTa-v2's `ContextPooler` sits outside the base model, so it is
    part of the head).
    """
    base: nn.Module = getattr(model, "base_model", model)
    base_prefix = "" if base is model else _name_of(model, base)
    get_input_embeddings = getattr(model, "get_input_embeddings", None)
    word_embeddings = get_input_embeddings() if callable(get_input_embeddings) else None
    if not isinstance(word_embeddings, nn.Module):
        raise ConfigError(
            f"{type(model).__name__} does not expose its input embeddings (get_input_embeddings()): "
            "use a Hugging Face transformer encoder, or run with technique 'standard'"
        )

    layers_name, layers = _encoder_layers(base)
    layer_prefixes = tuple(_join(base_prefix, f"{layers_name}.{index}") for index in range(len(layers)))
    pooler = _pooler_name(base)
    pooler_prefix = _join(base_prefix, pooler) if pooler else None

    word_name = _name_of(model, word_embeddings)
    if not under(word_name, base_prefix) or any(under(word_name, prefix) for prefix in layer_prefixes):
        raise ConfigError(f"the input embeddings {word_name!r} are not part of the base model's embeddings")
    parent = word_name.rpartition(".")[0]
    # A base model that holds its word embeddings directly (no embeddings module) gets that module alone.
    embedding_prefixes = [parent if parent != base_prefix else word_name]

    # Whatever else the base model owns outside layers and pooler sits at depth 0 with the embeddings.
    known = [*embedding_prefixes, *layer_prefixes, *([pooler_prefix] if pooler_prefix else [])]
    for name, _ in model.named_parameters():
        if not under(name, base_prefix) or any(under(name, prefix) for prefix in known):
            continue
        owner = name.rpartition(".")[0]
        # A parameter held directly by a module that also holds layers/pooler is taken alone.
        holds_known_parts = owner == base_prefix or any(under(part, owner) for part in known)
        prefix = name if holds_known_parts else owner
        embedding_prefixes.append(prefix)
        known.append(prefix)

    return ModelLayout(
        base_prefix=base_prefix,
        embedding_prefixes=tuple(embedding_prefixes),
        layer_prefixes=layer_prefixes,
        pooler_prefix=pooler_prefix,
        num_layers=len(layer_prefixes),
    )
