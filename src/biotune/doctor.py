"""`biotune doctor`: what this installation sees, in a form a user can paste into an issue.

Versions, threads, the data home and which BLURB datasets it holds, the default model, whether the
Hugging Face hub answers, GPUs, Ray. Every check reports its own failure as text: the doctor never
raises and never waits on the network for more than `HUB_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from importlib import metadata
from typing import Any

from biotune import __version__

HUB_URL = "https://huggingface.co"
HUB_TIMEOUT_S = 3.0
DEFAULT_MODEL = "minilm-l6"
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
REPORTED_ENV_VARS = (
    "BIOTUNE_DATA",
    *OFFLINE_ENV_VARS,
    "HF_HOME",
    "HF_ENDPOINT",
    "HTTPS_PROXY",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
)
_TRUE = ("1", "true", "yes", "on")
_URL_CREDENTIALS = re.compile(r"//[^/@\s]*@")

Report = dict[str, Any]


def _safely(check: Callable[[], Report]) -> Report:
    """A check that breaks says so in its own section instead of stopping the doctor."""
    try:
        return check()
    except Exception as exc:  # a diagnostic reports every failure, whatever its type
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> Report:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "biotune": __version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "tokenizers": _version("tokenizers"),
    }


def threads() -> Report:
    import torch

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
    }


def data_home() -> Report:
    from biotune.data.paths import resolve_data_dir
    from biotune.data.registry import all_specs
    from biotune.errors import BiotuneError

    try:
        home = resolve_data_dir()
    except BiotuneError as exc:
        return {"status": "missing", "error": str(exc), "datasets": {}}
    datasets: dict[str, str] = {}
    for spec in all_specs():
        missing = [split for split, name in spec.files.items() if not (home / name).is_file()]
        if not missing:
            datasets[spec.name] = "ok"
        elif len(missing) == len(spec.files):
            datasets[spec.name] = "missing"
        else:
            datasets[spec.name] = f"partial (missing {', '.join(missing)})"
    complete = sum(state == "ok" for state in datasets.values())
    return {
        "status": "ok",
        "path": str(home),
        "complete": complete,
        "total": len(datasets),
        "datasets": datasets,
    }


def default_model(name: str = DEFAULT_MODEL) -> Report:
    from biotune.models import resolve_model_path

    try:
        path = resolve_model_path(name)
    except Exception as exc:  # an absent model package surfaces as ImportError
        return {"status": "missing", "name": name, "error": f"{type(exc).__name__}: {exc}"}
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        return {"status": "broken", "name": name, "path": path, "error": str(exc).strip().splitlines()[0]}
    return {
        "status": "ok",
        "name": name,
        "path": path,
        "model_type": config.model_type,
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden_size": getattr(config, "hidden_size", None),
    }


def offline_flag() -> str | None:
    """The environment variable that puts Hugging Face libraries offline, if one does."""
    return next((v for v in OFFLINE_ENV_VARS if os.environ.get(v, "").strip().lower() in _TRUE), None)


def probe_url(url: str, timeout: float) -> str:
    """One HEAD request; returns the HTTP status line. Raises OSError (URLError, timeouts) on failure."""
    request = urllib.request.Request(
        url, method="HEAD", headers={"User-Agent": f"biotune-doctor/{__version__}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # the server answered: the hub is reachable
        return f"HTTP {exc.code}"


def hub(url: str = HUB_URL, timeout: float = HUB_TIMEOUT_S) -> Report:
    """Reachable, unreachable or offline. Name resolution ignores socket timeouts, so the probe runs in a
    daemon thread that is abandoned after `timeout` seconds."""
    flag = offline_flag()
    if flag is not None:
        return {"status": "offline", "url": url, "detail": f"{flag}={os.environ[flag]}: not checked"}
    outcome: dict[str, str] = {}

    def attempt() -> None:
        try:
            outcome["answer"] = probe_url(url, timeout)
        except Exception as exc:  # DNS, TLS, proxy, socket: all mean unreachable
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    started = time.monotonic()
    worker = threading.Thread(target=attempt, name="biotune-doctor-hub", daemon=True)
    worker.start()
    worker.join(timeout)
    seconds = round(time.monotonic() - started, 2)
    if "answer" in outcome:
        return {"status": "reachable", "url": url, "detail": outcome["answer"], "seconds": seconds}
    detail = outcome.get("error", f"no answer within {timeout:g} s")
    return {"status": "unreachable", "url": url, "detail": detail, "seconds": seconds}


def gpu() -> Report:
    import torch

    devices = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    from biotune.device import native_bf16, resolve_precision

    mps = getattr(torch.backends, "mps", None)
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return {
        "cuda_available": torch.cuda.is_available(),
        "devices": devices,
        "cuda_version": torch.version.cuda,
        "mps_available": bool(mps and mps.is_available()),
        "cpu_native_bf16": native_bf16(torch.device("cpu")),
        "auto_precision": resolve_precision("auto", auto),
    }


def ray_status() -> Report:
    version = _version("ray")
    return {"installed": version is not None, "version": version}


def _without_credentials(value: str) -> str:
    # a proxy or endpoint URL may carry user:password@; the report is meant to be pasted in public
    return _URL_CREDENTIALS.sub("//***@", value)


def environment() -> Report:
    return {name: _without_credentials(os.environ[name]) for name in REPORTED_ENV_VARS if name in os.environ}


def gather(check_hub: bool = True) -> Report:
    """Every check, each in its own section; never raises."""
    return {
        "versions": _safely(versions),
        "threads": _safely(threads),
        "data": _safely(data_home),
        "model": _safely(default_model),
        "hub": _safely(hub) if check_hub else {"status": "skipped", "url": HUB_URL, "detail": "not checked"},
        "gpu": _safely(gpu),
        "ray": _safely(ray_status),
        "environment": _safely(environment),
    }


# --- plain text -----------------------------------------------------------------------------------------


def _versions_line(v: Report) -> str:
    packages = ", ".join(
        f"{name} {v[name] or 'not installed'}" for name in ("torch", "transformers", "tokenizers")
    )
    return f"biotune {v['biotune']}, python {v['python']}, {packages} ({v['platform']})"


def _threads_line(t: Report) -> str:
    return (
        f"torch {t['torch_threads']} (interop {t['torch_interop_threads']}); "
        f"CPUs {t['cpu_count']}, usable {t['cpus_usable']}"
    )


def _data_line(data: Report) -> str:
    if data["status"] != "ok":
        return f"{data['status']}: {data['error']}"
    partial = [f"{name} {state}" for name, state in data["datasets"].items() if state != "ok"]
    line = f"ok: {data['path']} ({data['complete']} of {data['total']} datasets complete"
    return line + (f"; {', '.join(partial)})" if partial else ")")


def _model_line(model: Report) -> str:
    if model["status"] != "ok":
        return f"{model['status']}: {model['name']}: {model['error']}"
    return (
        f"ok: {model['name']} -> {model['path']} ({model['model_type']}, {model['layers']} layers, "
        f"hidden {model['hidden_size']})"
    )


def _hub_line(info: Report) -> str:
    return f"{info['status']}: {info['url']} ({info['detail']})"


def _gpu_line(info: Report) -> str:
    precision = f"; --precision auto is {info['auto_precision']}" if info.get("auto_precision") else ""
    if info["devices"]:
        listed = ", ".join(info["devices"])
        return f"{len(info['devices'])} visible: {listed} (CUDA {info['cuda_version']}){precision}"
    built = f"torch built with CUDA {info['cuda_version']}" if info["cuda_version"] else "CPU-only torch"
    bf16 = "; the CPU has native bf16" if info.get("cpu_native_bf16") else ""
    return f"none visible ({built}{'; MPS available' if info['mps_available'] else ''}{bf16}){precision}"


def _ray_line(info: Report) -> str:
    return f"installed {info['version']}" if info["installed"] else "not installed (needed for --runner ray)"


def _environment_line(env: Report) -> str:
    return (
        ", ".join(f"{name}={value}" for name, value in env.items()) or "(none of the variables biotune reads)"
    )


LINES: tuple[tuple[str, str, Callable[[Report], str]], ...] = (
    ("versions", "versions", _versions_line),
    ("threads", "threads", _threads_line),
    ("data", "data home", _data_line),
    ("model", "default model", _model_line),
    ("hub", "hub", _hub_line),
    ("gpu", "gpu", _gpu_line),
    ("ray", "ray", _ray_line),
    ("environment", "environment", _environment_line),
)


def format_report(report: Report) -> str:
    """Plain text, one fact per line and no wrapping, ready to paste into an issue."""
    width = max(len(label) for _, label, _ in LINES)
    rows = ["biotune doctor"]
    for key, label, render in LINES:
        section = report[key]
        text = f"error: {section['error']}" if section.get("status") == "error" else render(section)
        rows.append(f"  {label.ljust(width)}  {text}")
    return "\n".join(rows)
