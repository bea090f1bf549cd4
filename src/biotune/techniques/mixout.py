"""Mixout (Lee, Cho and Kang, ICLR 2020): in training, each pretrained weight is swapped at random for its
pretrained value, and the mix is rescaled so that its expectation is the weight itself.

For a pretrained encoder Linear layer with current weight w and pretrained weight u, every training forward
pass uses ((1 - M) * w + M * u - P * u) / (1 - P) with M ~ Bernoulli(P) drawn element-wise afresh; in
evaluation (model.eval()) the layer uses w. P = 0 installs nothing, so it is exactly standard training.

It is installed as a context manager around the training epochs, beside `biotune.dropout.cpu_dropout`:
each target module keeps its class and its parameters, only its `forward` is shadowed by an instance
attribute while training runs, and leaving the context removes it. So state dicts (the selected epoch's
copy, the saved model) are plain `nn.Linear` weights throughout, and what is saved or exported after
training is a plain model. A `torch.nn.utils.parametrize` parametrization would have renamed the weights
(`parametrizations.weight.original`) while training, and `MixLinear` modules (revisit-bert-finetuning)
would have had to be swapped back before saving.

Differences from revisit-bert-finetuning's use of it, so that `mixout:P` against `standard` changes one
thing only: dropout stays as configured (they set it to 0), and only the encoder layers' Linear weights are
mixed (the head, the pooler and ELECTRA's embedding projection are left alone); layers re-initialized by
`reinit:K` have no pretrained value, and frozen ones do not change, so neither is mixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.nn import functional

from biotune.errors import ConfigError
from biotune.techniques.layout import ModelLayout, find_layout, under
from biotune.techniques.plan import TechniquePlan


def mixout_weight(weight: torch.Tensor, pretrained: torch.Tensor, p: float) -> torch.Tensor:
    """((1 - M) * w + M * u - p * u) / (1 - p) with M ~ Bernoulli(p) element-wise; its expectation is w."""
    if not 0 <= p < 1:
        raise ValueError(f"mixout needs 0 <= p < 1, got {p}")
    mask = torch.rand(weight.shape, device=weight.device) < p
    return (torch.where(mask, pretrained, weight) - p * pretrained) / (1 - p)


def _mixout_forward(
    module: nn.Linear, pretrained: torch.Tensor, p: float, input: torch.Tensor
) -> torch.Tensor:
    weight = mixout_weight(module.weight, pretrained, p) if module.training else module.weight
    return functional.linear(input, weight, module.bias)


def mixout_targets(model: nn.Module, layout: ModelLayout, plan: TechniquePlan) -> list[str]:
    """Names of the encoder layers' trainable nn.Linear modules that keep their pretrained weights.

    The top `reinit:K` layers are left out (their weights are new) and so are frozen modules.
    """
    reinit = plan.reinit_layers or 0
    pretrained_layers = layout.layer_prefixes[: layout.num_layers - reinit]
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module.weight.requires_grad
        and any(under(name, prefix) for prefix in pretrained_layers)
    ]


@contextmanager
def mixout(model: nn.Module, plan: TechniquePlan) -> Iterator[list[str]]:
    """Mix the encoder's pretrained Linear weights while the context lasts (in training mode only).

    The pretrained value u of each weight is its value on entry, so enter after the techniques are applied
    and the model is on its device, before the first step. Yields the mixed modules' names ([] without
    mixout, or with mixout:0).
    """
    p = plan.mixout_probability
    if not p:
        yield []
        return
    modules = dict(model.named_modules())
    names = mixout_targets(model, find_layout(model), plan)
    if not names:
        raise ConfigError(
            f"mixout:{p} finds no trainable pretrained Linear layer in the encoder (all frozen or "
            "re-initialized): lower freeze:K or reinit:K, or drop mixout"
        )
    for name in names:
        module = modules[name]
        pretrained = module.weight.detach().clone()
        # an instance attribute shadows nn.Linear.forward; class, parameters and state dict stay the same
        module.forward = partial(_mixout_forward, module, pretrained, p)
    try:
        yield names
    finally:
        for name in names:
            vars(modules[name]).pop("forward", None)
