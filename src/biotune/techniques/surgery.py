"""Changes to a model before fine-tuning: re-initialize the top layers, freeze the bottom ones."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from biotune.errors import ConfigError
from biotune.techniques.layout import ModelLayout, find_layout, under
from biotune.techniques.plan import TechniquePlan


def is_norm(module: nn.Module) -> bool:
    """LayerNorm and look-alikes (DeBERTa's, T5-style RMSNorm) found by type, not by parameter name."""
    name = type(module).__name__
    return isinstance(module, nn.LayerNorm | nn.RMSNorm) or "LayerNorm" in name or "RMSNorm" in name


def validate_plan(plan: TechniquePlan, num_layers: int) -> None:
    """Reject impossible plans for a model with `num_layers` encoder layers, before any work.

    freeze:K needs K <= L, reinit:K needs K <= L, and freeze + reinit must not touch the same layer
    (K_freeze + K_reinit <= L): a re-initialized layer that stays frozen would stay random.
    Freeze and LLRD together are allowed: frozen parameters simply leave the optimizer and the
    trainable ones keep their depth's learning rate. Mixout needs at least one encoder layer that is
    neither frozen nor re-initialized (freeze + reinit < L).
    """
    freeze, reinit = plan.freeze_layers, plan.reinit_layers
    if freeze is not None and freeze > num_layers:
        raise ConfigError(
            f"freeze:{freeze} asks for more layers than the model has ({num_layers}): "
            f"use freeze:K with K <= {num_layers}"
        )
    if reinit is not None and reinit > num_layers:
        raise ConfigError(
            f"reinit:{reinit} asks for more layers than the model has ({num_layers}): "
            f"use reinit:K with 1 <= K <= {num_layers}"
        )
    if freeze is not None and reinit is not None and freeze + reinit > num_layers:
        raise ConfigError(
            f"freeze:{freeze} with reinit:{reinit} would freeze re-initialized layers of a "
            f"{num_layers}-layer model: make freeze + reinit <= {num_layers} "
            f"(e.g. freeze:{num_layers - reinit} with reinit:{reinit})"
        )
    if plan.mixout_probability and (freeze or 0) + (reinit or 0) >= num_layers:
        raise ConfigError(
            f"mixout:{plan.mixout_probability} would have no pretrained layer left to mix: freeze:K and "
            f"reinit:K together cover all {num_layers} layers of this model; make freeze + reinit "
            f"< {num_layers}, or drop mixout"
        )


def freeze_lower_layers(model: nn.Module, layout: ModelLayout, k: int) -> list[str]:
    """Set requires_grad=False on the embeddings (depth 0) and the bottom k encoder layers.

    freeze:0 freezes the embeddings only (BLURB.md: "embeddings and the bottom k layers"); the pooler
    and the head always train. Returns the frozen parameter names in model order.
    """
    if not 0 <= k <= layout.num_layers:
        raise ConfigError(f"freeze:{k} needs 0 <= K <= {layout.num_layers} for this model")
    frozen: list[str] = []
    for name, parameter in model.named_parameters():
        if layout.depth_of(name) <= k:
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def _draw_normal(parameter: nn.Parameter, std: float, generator: torch.Generator) -> None:
    # Drawn on CPU in float32 so the result depends on the seed only, not on device or dtype.
    sample = torch.empty(parameter.shape, dtype=torch.float32).normal_(0.0, std, generator=generator)
    parameter.copy_(sample)


def _reinit_module(module: nn.Module, std: float, generator: torch.Generator) -> list[str]:
    """Re-initialize one leaf module as BERT's `_init_weights` does; returns local names it touched."""
    touched: list[str] = []
    if isinstance(module, nn.Linear | nn.Embedding):
        _draw_normal(module.weight, std, generator)
        touched.append("weight")
        padding_idx = getattr(module, "padding_idx", None)
        if padding_idx is not None:
            module.weight[padding_idx].zero_()
    elif is_norm(module):
        if isinstance(getattr(module, "weight", None), nn.Parameter):
            module.weight.fill_(1.0)
            touched.append("weight")
    else:
        return touched
    if isinstance(getattr(module, "bias", None), nn.Parameter):
        module.bias.zero_()
        touched.append("bias")
    return touched


@torch.no_grad()
def reinit_top_layers(
    model: nn.Module, layout: ModelLayout, k: int, initializer_range: float, seed: int
) -> list[str]:
    """Re-draw the top k encoder layers and the pooler (if the base model has one).

    Linear/Embedding weights ~ N(0, initializer_range), their biases 0; norm weights 1, biases 0.
    Every other parameter is left bit-identical. Draws come from a private torch.Generator(seed), so
    the result is reproducible and the global RNG is not consumed. Returns re-initialized names.
    """
    if not 1 <= k <= layout.num_layers:
        raise ConfigError(f"reinit:{k} needs 1 <= K <= {layout.num_layers} for this model")
    if initializer_range <= 0:
        raise ConfigError(f"initializer_range must be positive, got {initializer_range}")
    targets = [*layout.layer_prefixes[layout.num_layers - k :], *filter(None, [layout.pooler_prefix])]
    generator = torch.Generator().manual_seed(seed)
    reinitialized: list[str] = []
    for module_name, module in model.named_modules():
        if any(under(module_name, prefix) for prefix in targets):
            touched = _reinit_module(module, initializer_range, generator)
            reinitialized.extend(f"{module_name}.{local}" for local in touched)
    return reinitialized


@dataclass(frozen=True)
class AppliedTechniques:
    """What `apply_techniques` did, for the engine to log."""

    layout: ModelLayout
    frozen_names: tuple[str, ...]
    reinit_names: tuple[str, ...]


def apply_techniques(
    model: nn.Module, plan: TechniquePlan, initializer_range: float, seed: int
) -> AppliedTechniques:
    """Validate the plan against the model, re-initialize, then freeze.

    Only the model surgery happens here; the engine builds optimizer groups afterwards with
    `build_param_groups` (LLRD) and `make_optimizer` (bias correction), and reads warmup, epoch
    factor and patience from the plan itself.
    """
    layout = find_layout(model)
    validate_plan(plan, layout.num_layers)
    reinit_names: list[str] = []
    frozen_names: list[str] = []
    if plan.reinit_layers is not None:
        reinit_names = reinit_top_layers(model, layout, plan.reinit_layers, initializer_range, seed)
    if plan.freeze_layers is not None:
        frozen_names = freeze_lower_layers(model, layout, plan.freeze_layers)
    return AppliedTechniques(
        layout=layout, frozen_names=tuple(frozen_names), reinit_names=tuple(reinit_names)
    )
