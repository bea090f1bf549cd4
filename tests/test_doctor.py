"""`biotune doctor`: every section is there, the network is never waited on, nothing makes it crash.

The hub probe is replaced in every test (the machines running the suite may have no network), so these
check the doctor's decisions: offline mode is not probed, a failure or a hang reads as unreachable.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import threading
import time
import urllib.error
from pathlib import Path

import pytest
import tokenizers
import torch
import transformers
from typer.testing import CliRunner

import biotune
import biotune.doctor as doctor
from biotune.cli import app

SECTIONS = {"versions", "threads", "data", "model", "hub", "gpu", "ray", "environment"}


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if no offline switch were set (the suite itself runs with HF_HUB_OFFLINE=1)."""
    for name in doctor.OFFLINE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The probe fails at once, as without network; the list records each URL tried."""
    tried: list[str] = []

    def refuse(url: str, timeout: float) -> str:
        tried.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(doctor, "probe_url", refuse)
    return tried


def test_report_has_every_section_with_real_values(no_network: list[str], shared_data: Path) -> None:
    report = doctor.gather()
    assert set(report) == SECTIONS
    versions = report["versions"]
    assert versions["biotune"] == biotune.__version__
    assert (versions["torch"], versions["transformers"], versions["tokenizers"]) == (
        torch.__version__,
        transformers.__version__,
        tokenizers.__version__,
    )
    assert report["threads"]["torch_threads"] == torch.get_num_threads() >= 1
    assert report["gpu"]["cuda_available"] == torch.cuda.is_available()
    assert len(report["gpu"]["devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    model = report["model"]
    assert (model["status"], model["model_type"], model["layers"]) == ("ok", "bert", 6)
    ray_installed = importlib.util.find_spec("ray") is not None
    ray_version = importlib.import_module("ray").__version__ if ray_installed else None
    assert report["ray"] == {"installed": ray_installed, "version": ray_version}


def test_ray_absent_reads_as_not_installed_with_what_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = doctor.metadata.version

    def without_ray(package: str) -> str:
        if package == "ray":
            raise doctor.metadata.PackageNotFoundError(package)
        return real_version(package)

    monkeypatch.setattr(doctor.metadata, "version", without_ray)
    report = doctor.gather(check_hub=False)
    assert report["ray"] == {"installed": False, "version": None}
    lines = dict(line.split(None, 1) for line in doctor.format_report(report).splitlines()[1:])
    assert lines["ray"] == "not installed (needed for --runner ray)"


def test_data_home_lists_the_datasets_it_holds(
    no_network: list[str], shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOTUNE_DATA", str(shared_data))
    data = doctor.gather()["data"]
    assert data["status"] == "ok" and Path(data["path"]) == shared_data
    assert len(data["datasets"]) == data["total"] == 13
    assert data["datasets"]["NCBI-disease"] == "ok"
    ebm_train = shared_data / "ebmnlp" / "train.tsv"
    assert data["datasets"]["ebmnlp"] == ("ok" if ebm_train.is_file() else "partial (missing train)")
    assert data["complete"] == sum(state == "ok" for state in data["datasets"].values())


def test_missing_data_home_says_why_and_the_rest_still_runs(
    no_network: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOTUNE_DATA", str(tmp_path / "nowhere"))
    report = doctor.gather()
    assert report["data"]["status"] == "missing" and "BIOTUNE_DATA" in report["data"]["error"]
    assert report["model"]["status"] == "ok"
    assert "data home      missing: $BIOTUNE_DATA points to" in doctor.format_report(report)


def test_offline_mode_is_reported_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    hub = doctor.hub()
    assert hub["status"] == "offline" and "HF_HUB_OFFLINE=1" in hub["detail"]
    assert no_network == [] and time.monotonic() - started < 0.5


def test_no_network_reads_as_unreachable(online: None, no_network: list[str]) -> None:
    hub = doctor.hub()
    assert hub["status"] == "unreachable" and "Name or service not known" in hub["detail"]
    assert no_network == [doctor.HUB_URL]


def test_a_hanging_probe_is_abandoned_after_the_timeout(
    online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def hang(url: str, timeout: float) -> str:
        release.wait(30)  # a name lookup that never answers ignores the socket timeout
        return "HTTP 200"

    monkeypatch.setattr(doctor, "probe_url", hang)
    started = time.monotonic()
    try:
        hub = doctor.hub(timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 2.0
    assert hub["status"] == "unreachable" and hub["detail"] == "no answer within 0.3 s"


def test_any_answer_from_the_server_means_reachable(online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "probe_url", lambda url, timeout: "HTTP 405")
    assert doctor.hub()["status"] == "reachable"


def test_a_broken_check_is_reported_not_raised(
    no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict:
        raise RuntimeError("torch threads unavailable")

    monkeypatch.setattr(doctor, "threads", broken)
    report = doctor.gather()
    assert report["threads"] == {"status": "error", "error": "RuntimeError: torch threads unavailable"}
    assert "threads        error: RuntimeError: torch threads unavailable" in doctor.format_report(report)


def test_a_missing_default_model_is_reported(no_network: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    model = doctor.default_model(str(folder))
    assert model["status"] == "broken" and model["path"] == str(folder.resolve())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert doctor.default_model(str(empty))["status"] == "missing"  # no config.json: not a model folder


def test_cli_json_parses_and_text_has_one_line_per_section(
    no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == SECTIONS
    result = runner.invoke(app, ["doctor", "--no-network"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "biotune doctor"
    labels = [line.split("  ")[1].strip() for line in lines[1:]]
    assert labels == [label for _, label, _ in doctor.LINES]
    assert "hub            skipped" in result.stdout and no_network == []


def test_environment_is_reported_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:s3cret@proxy.example:3128")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = doctor.environment()
    assert env["HTTPS_PROXY"] == "http://***@proxy.example:3128" and env["HF_HUB_OFFLINE"] == "1"
    assert "s3cret" not in json.dumps(doctor.gather(check_hub=False))
