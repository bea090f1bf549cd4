"""Fine-tuning stability techniques as small pure functions over a model's parameters.

Modelled on ELECTRA's `_get_layer_lrs` and nanoGPT's `configure_optimizers`: a technique is a rule
over parameter names and module structure; optimizer groups are built by rule. Typical use:

    plan = parse_techniques(["freeze:4", "llrd:0.9"])
    applied = apply_techniques(model, plan, model.config.initializer_range, seed)
    groups = build_param_groups(
        model, applied.layout, lr, weight_decay, plan.llrd_decay, plan.pretrained_decay, applied.reinit_names
    )
    optimizer = make_optimizer(groups, lr, bias_correction=plan.bias_correction)
    attach_pretrained_decay(optimizer)  # pretrained-decay:L
    with mixout(model, plan):  # mixout:P, while training only
        train(model, optimizer)
"""

from biotune.techniques.layout import ModelLayout, find_layout
from biotune.techniques.mixout import mixout, mixout_targets, mixout_weight
from biotune.techniques.optim import (
    AdamWNoBiasCorrection,
    attach_pretrained_decay,
    build_param_groups,
    layer_lr_scales,
    make_optimizer,
    no_decay_names,
)
from biotune.techniques.plan import TechniquePlan, parse_techniques
from biotune.techniques.surgery import (
    AppliedTechniques,
    apply_techniques,
    freeze_lower_layers,
    reinit_top_layers,
    validate_plan,
)

__all__ = [
    "AdamWNoBiasCorrection",
    "AppliedTechniques",
    "ModelLayout",
    "TechniquePlan",
    "apply_techniques",
    "attach_pretrained_decay",
    "build_param_groups",
    "find_layout",
    "freeze_lower_layers",
    "layer_lr_scales",
    "make_optimizer",
    "mixout",
    "mixout_targets",
    "mixout_weight",
    "no_decay_names",
    "parse_techniques",
    "reinit_top_layers",
    "validate_plan",
]
