"""ONNX: a saved model as `model.onnx` (onnxruntime runs it), and the module that runs it for `predict`.

The export uses `torch.onnx.export` with the TorchScript exporter (`dynamo=False`). Under torch 2.13 the
default torch.export-based exporter needs the extra `onnxscript` package and traces transformers 5's
mask builders (vmap) poorly, while the TorchScript exporter needs nothing more than torch, takes
`dynamic_axes` for the batch and sequence sizes, and gives logits within 1e-6 of torch's on the tested
heads. The graph is biotune's whole model, not only the encoder: the mean pooling, the linear head and the
siamese cosine with its scale and shift are in it, so onnxruntime returns the same logits torch does.

The trace records Python-side decisions as constants; transformers decides whether to build an
attention mask by looking at the sample's padding, so the sample batch always holds padding (in both
sequences of a siamese pair), and each export is checked against torch on a padded and an unpadded batch.

int8 is onnxruntime's dynamic quantization (`quantize_dynamic`: int8 weights, activations quantized at
run time), the usual choice for transformer encoders on a CPU.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from biotune.errors import BiotuneError, ConfigError
from biotune.run_folder import BIOTUNE_MODEL_FILE, ModelCard, OnnxRecord, write_file

ONNX_FILE = "model.onnx"
# Supported by every onnxruntime from 1.17 (the extra's floor) on, and by the TorchScript exporter.
OPSET = 17
INSTALL_HINT = 'pip install "biotune[onnx]"  (onnxruntime and onnx)'
OUTPUT_NAME = "logits"
# fp32 graphs must reproduce torch to this; int8 ones are checked for finite outputs only
FP32_TOLERANCE = 1e-4
Quantization = Literal["int8"]
QUANTIZATIONS: tuple[str, ...] = ("int8",)


def require_onnxruntime(
    what: str = "--format onnx", packages: tuple[str, ...] = ("onnxruntime", "onnx")
) -> None:
    """Fail up front, before any work, when the onnx extra is missing (running needs onnxruntime only;
    exporting needs onnx too, for the quantizer and the checker)."""
    missing = [name for name in packages if not _importable(name)]
    if missing:
        raise ConfigError(f"{what} needs {' and '.join(missing)}, not installed here: {INSTALL_HINT}")


def _importable(name: str) -> bool:
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def onnx_available() -> bool:
    return _importable("onnxruntime")


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    inputs: list[str]
    quantization: str | None
    max_difference: float  # largest |onnxruntime - torch| over the check batches


class _LogitsOnly(nn.Module):
    """biotune's model with positional inputs and a plain logits tensor out, as the exporter wants."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).logits


def sample_batches(
    card: ModelCard, tokenizer: Any, placeholders: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two batches of the model's real inputs, as `predict` feeds them: a padded pair of rows (the trace
    and a check) and one unpadded row (a check that the mask path is not baked in)."""
    from biotune.batching import collate
    from biotune.tasks import TaskOptions, get_task

    options = TaskOptions(pair_encoding=card.pair_encoding)
    task = get_task(card.task_type, card.labels, card.negative_label, options)
    example = task.card_example(placeholders)
    if isinstance(example, tuple):  # pairs: each side longer in one of the rows, so both are padded
        first, second = example
        rows = [(f"{first} {first}", second), (first, f"{second} {second}")]
    else:
        rows = [(f"{example} {example}",), (example,)]
    examples = [e for k, texts in enumerate(rows) for e in task.predict_input(f"sample{k}", texts).examples]
    features = task.featurize(examples, tokenizer, card.max_length).features
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    padded, unpadded = (collate(chunk, pad_id, task.head) for chunk in (features[:2], features[1:2]))
    return _model_inputs(padded), _model_inputs(unpadded)


def _model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in batch.items() if name != "labels"}  # as predict feeds it


def export_onnx(folder: Path, quantize: str | None = None) -> OnnxExport:
    """Write `model.onnx` into a saved model folder and record it in the folder's biotune_model.json."""
    require_onnxruntime()
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZATIONS)}")
    from biotune.export import placeholders_of
    from biotune.models import load_saved_model

    model, tokenizer, card = load_saved_model(folder)
    trace, unpadded = sample_batches(card, tokenizer, placeholders_of(folder))
    names = list(trace)
    wrapper = _LogitsOnly(model, names).eval()  # the exporter restores the wrapper's mode afterwards
    sequence_axes = {
        name: {0: "batch", 1: "sequence_b" if name.endswith("_b") else "sequence"} for name in names
    }
    output_axes = {OUTPUT_NAME: {0: "batch"} if _is_pooled(card) else {0: "batch", 1: "sequence"}}
    target = folder / ONNX_FILE
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        fp32 = Path(scratch) / ONNX_FILE
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer's notes on transformers' Python-side mask checks: constants here, by design
            # (see the module doc), and the note that this exporter is the legacy one
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
            torch.onnx.export(
                wrapper,
                tuple(trace[name] for name in names),
                str(fp32),
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={**sequence_axes, **output_axes},
                opset_version=OPSET,
                **_torchscript_exporter(),
            )
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
        else:
            fp32.replace(target)
    difference = max(_difference(wrapper, target, names, batch) for batch in (trace, unpadded))
    if quantize is None and not difference <= FP32_TOLERANCE:
        target.unlink()
        raise BiotuneError(
            f"the ONNX export of {folder} gives logits {difference:.2g} away from torch's "
            f"(more than {FP32_TOLERANCE}); please report this with `biotune doctor`'s output"
        )
    onnx = OnnxRecord(file=ONNX_FILE, opset=OPSET, inputs=names, quantization=quantize)
    write_file(folder / BIOTUNE_MODEL_FILE, card.model_copy(update={"onnx": onnx}))
    return OnnxExport(target, names, quantize, difference)


def _torchscript_exporter() -> dict[str, Any]:
    """`dynamo=False` where torch has the choice (2.5 on; the default from 2.9 is the dynamo exporter)."""
    import inspect

    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _is_pooled(card: ModelCard) -> bool:
    from biotune.tasks import get_head

    return get_head(card.head).pooled


def _difference(wrapper: nn.Module, path: Path, names: list[str], batch: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        expected = wrapper(*(batch[name] for name in names)).numpy()
    got = OnnxModel(path)(**batch).logits.numpy()
    if not np.isfinite(got).all():
        return float("inf")
    return float(np.abs(got - expected).max())


class _Logits:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


class OnnxModel(nn.Module):
    """`model.onnx` behind the interface `predict` uses: keyword tensors in, `.logits` out (on the CPU).

    An nn.Module without parameters, so `.to(cpu)` and `.eval()` work as on the torch model.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__()
        require_onnxruntime("running model.onnx", ("onnxruntime",))
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
            raise ConfigError(f"{path}: onnxruntime cannot load it ({exc}); export it again") from exc
        self.input_names = [node.name for node in self.session.get_inputs()]

    def forward(self, **inputs: torch.Tensor) -> _Logits:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ConfigError(f"{self.path}: the model expects inputs {missing} that predict did not make")
        feeds = {name: inputs[name].detach().cpu().numpy().astype(np.int64) for name in self.input_names}
        (logits,) = self.session.run([OUTPUT_NAME], feeds)
        return _Logits(torch.from_numpy(logits))
