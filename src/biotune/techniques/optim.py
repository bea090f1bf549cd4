"""Optimizer parameter groups by rule (weight decay, layer-wise lr decay) and the AdamW variants."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import torch
from torch import nn

from biotune.errors import ConfigError
from biotune.techniques.layout import ModelLayout
from biotune.techniques.surgery import is_norm


def layer_lr_scales(layout: ModelLayout, param_names: Iterable[str], decay: float) -> dict[str, float]:
    """Learning-rate multiplier per parameter under layer-wise lr decay: D^(L+2-depth).

    ELECTRA's `_get_layer_lrs` convention: the head gets lr, the pooler lr*D, the top encoder layer
    lr*D^2, ..., the embeddings lr*D^(L+2). Chosen over revisit-bert-finetuning's (head and pooler
    both lr, embeddings lr*D^(L+1)) because it gives every part of the model its own depth, so one
    rule covers models with and without a pooler, and ELECTRA's published decays (0.8 base, 0.9
    large) were tuned under it.
    """
    if not 0 < decay <= 1:
        raise ConfigError(f"llrd:{decay} needs 0 < D <= 1")
    return {name: decay ** (layout.head_depth - layout.depth_of(name)) for name in param_names}


def no_decay_names(model: nn.Module) -> set[str]:
    """Biases and normalization weights: weight decay toward 0 would fight their role (nanoGPT, BERT)."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for local, _ in module.named_parameters(recurse=False):
            if local == "bias" or is_norm(module):
                names.add(prefix + local)
    return names


def is_pretrained(layout: ModelLayout, name: str, fresh: Collection[str]) -> bool:
    """A base-model parameter that was not re-initialized; the head (outside the base model) is new."""
    return layout.depth_of(name) < layout.head_depth and name not in fresh


def build_param_groups(
    model: nn.Module,
    layout: ModelLayout,
    lr: float,
    weight_decay: float,
    llrd_decay: float | None = None,
    pretrained_decay: float | None = None,
    fresh: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Optimizer groups over the trainable parameters only (frozen ones never reach the optimizer).

    Without LLRD: at most two groups, decayed then not decayed. With LLRD: one group per (depth,
    decay) pair ordered from the embeddings (depth 0) up to the head, each with "depth" and its lr.
    Every group carries "params", "lr", "weight_decay" and "names" (for logging and tests).

    With pretrained-decay L > 0 the groups are split once more, pretrained parameters (base model, not in
    `fresh`, the re-initialized names) apart from new ones, and the pretrained groups carry
    "pretrained_decay": L for `attach_pretrained_decay`. L = 0 (or None) leaves the groups of standard
    training exactly as they are, parameter order included (gradient clipping sums norms in that order).
    """
    skip_decay = no_decay_names(model)
    scales = None
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if llrd_decay is not None:
        scales = layer_lr_scales(layout, [name for name, _ in trainable], llrd_decay)
    if pretrained_decay is not None and pretrained_decay < 0:
        raise ConfigError(f"pretrained-decay:{pretrained_decay} needs L >= 0")
    groups: dict[tuple[int, bool, bool], dict[str, Any]] = {}
    for name, parameter in trainable:
        decays = name not in skip_decay
        depth = layout.depth_of(name) if scales is not None else 0
        # sorted keys: within a depth, pretrained groups (False) come before new ones
        new = bool(pretrained_decay) and not is_pretrained(layout, name, fresh)
        key = (depth, not decays, new)
        if key not in groups:
            groups[key] = {
                "params": [],
                "names": [],
                "lr": lr * scales[name] if scales is not None else lr,
                "weight_decay": weight_decay if decays else 0.0,
            }
            if scales is not None:
                groups[key]["depth"] = depth
            if pretrained_decay and not new:
                groups[key]["pretrained_decay"] = pretrained_decay
        groups[key]["params"].append(parameter)
        groups[key]["names"].append(name)
    return [groups[key] for key in sorted(groups)]


def attach_pretrained_decay(optimizer: torch.optim.Optimizer) -> int:
    """Pretrained-weight decay (L2-SP, Li et al. 2018): pull every parameter of a group that carries
    "pretrained_decay": L toward its value now (u, the pretrained weights), decoupled as AdamW decays.

    Each optimizer step first moves w <- w - lr * L * (w - u), the gradient step of L/2 * ||w - u||^2 taken
    apart from Adam's moments, with the group's current lr (schedule and LLRD included) and on the pre-update
    weights, as AdamW's own decay and revisit-bert-finetuning's `PriorWD` do; then the optimizer steps. It
    is a step pre-hook of the optimizer, so a step the fp16 grad scaler skips is not decayed either. Biases
    and norm weights are pulled too: decay toward zero would fight their role, decay toward their
    pretrained value does not. The ordinary weight decay toward zero is left as configured everywhere (so
    pretrained-decay:0 is exactly standard training, and L is the one thing that changes); set
    weight_decay 0 for L2-SP alone. Returns how many parameters are pulled (0: nothing attached).

    With `TrainedRows` the pulled embedding is its compact matrix of the rows the training data reaches;
    the rows it never reaches get no gradient and keep only the ordinary decay.
    """
    anchors: list[tuple[dict[str, Any], list[torch.Tensor]]] = []
    for group in optimizer.param_groups:
        if group.get("pretrained_decay"):
            anchors.append((group, [p.detach().clone() for p in group["params"]]))
    if not anchors:
        return 0

    @torch.no_grad()
    def pull_toward_pretrained(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group, pretrained in anchors:
            weight = group["lr"] * group["pretrained_decay"]
            for parameter, anchor in zip(group["params"], pretrained, strict=True):
                parameter.lerp_(anchor, weight)  # w + weight * (u - w)

    optimizer.register_step_pre_hook(pull_toward_pretrained)
    return sum(len(pretrained) for _, pretrained in anchors)


class AdamWNoBiasCorrection(torch.optim.Optimizer):
    """AdamW without Adam's bias correction, as in the original BERT's `BERTAdam`.

    update = m / (sqrt(v) + eps) with m, v the raw exponential moving averages, and decoupled weight
    decay p <- p - lr * (update + weight_decay * p). Early steps are larger than bias-corrected
    AdamW's (m and v start at 0), one suspected cause of BERT fine-tuning instability.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(
                f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}"
            )
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                grad = parameter.grad
                if grad.is_sparse:
                    raise RuntimeError("AdamWNoBiasCorrection does not support sparse gradients")
                state = self.state[parameter]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(parameter)
                    state["exp_avg_sq"] = torch.zeros_like(parameter)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # Decay uses the pre-update weights, as torch.optim.AdamW does.
                parameter.mul_(1 - group["lr"] * group["weight_decay"])
                parameter.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-group["lr"])
        return loss


def make_optimizer(
    groups: list[dict[str, Any]],
    lr: float,
    bias_correction: bool = True,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """torch.optim.AdamW (bias-corrected, the default) or BERTAdam-style AdamW without bias correction.

    Each group's own "lr" and "weight_decay" win over `lr`; groups without "weight_decay" get 0.
    """
    if bias_correction:
        on_cpu = all(p.device.type == "cpu" for group in groups for p in group["params"])
        # torch picks the slow per-tensor loop on CPU unless told; on accelerators its default is fine.
        return torch.optim.AdamW(
            groups, lr=lr, betas=betas, eps=eps, weight_decay=0.0, foreach=True if on_cpu else None
        )
    return AdamWNoBiasCorrection(groups, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
