"""`biotune data fetch` against a real HTTP server on 127.0.0.1 (never anything outside the machine).

The server serves a copy, made in tmp_path, of a small part of the real BLURB data (BIOSSES and PubMedQA's
two originals) in two layouts: the upstream one (`/<owner>/<repo>/<commit>/<path>`, the pinned URLs with
their host pointed at the server by $BIOTUNE_DATA_UPSTREAM), and a mirror (the data-home layout). Faults
(a connection cut mid-file, 5xx answers, a hang, corrupted bytes, a missing file) are set per path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

from _blurb_data import MISSING_REASON
from biotune.cli import app
from biotune.data import paths
from biotune.data.check import check_datasets
from biotune.data.download import TransferSettings
from biotune.data.fetch import (
    FAILED,
    FETCHED,
    GENERATED,
    KEPT,
    PARTIAL_DIR,
    FetchError,
    LicenseNotAccepted,
    fetch_datasets,
)
from biotune.data.manifest import MANIFEST_NAME, Manifest
from biotune.data.sources import SOURCES, UPSTREAM_ENV_VAR, SourceFile, file_source

SUBSET = ("BIOSSES", "pubmedqa")
FAST = TransferSettings(read_timeout=0.4, connect_timeout=0.4, attempts=3, backoff=0.01, max_backoff=0.02)
BIOSSES_TRAIN = "BIOSSES/train.tsv"


@dataclass
class Fault:
    statuses: list[int] = field(default_factory=list)  # answered (and used up) before the file is served
    cut_after: int | None = None  # send this many bytes of the body, then drop the connection (once)
    hang: bool = False  # accept the request and never answer
    corrupt: bool = False  # serve the file with one byte changed
    ignore_range: bool = False  # answer a Range request with the whole file (200), as http.server does


@dataclass
class Loopback:
    root: Path
    url: str
    faults: dict[str, Fault] = field(default_factory=dict)  # keyed by URL path without the leading /
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header) per request
    release: threading.Event = field(default_factory=threading.Event)

    def requests_for(self, path: str) -> list[str | None]:
        return [ranges for requested, ranges in self.log if requested == path]


def _handler(server: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
            pass

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path).lstrip("/")
            ranges = self.headers.get("Range")
            server.log.append((path, ranges))
            fault = server.faults.get(path, Fault())
            if fault.statuses:
                self.send_error(fault.statuses.pop(0))
                return
            if fault.hang:
                server.release.wait(10)
                return
            file = server.root / path
            if not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            if fault.corrupt:
                body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
            start = int(ranges.removeprefix("bytes=").rstrip("-")) if ranges and not fault.ignore_range else 0
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if fault.cut_after is not None:
                self.wfile.write(body[start : fault.cut_after])
                self.wfile.flush()
                fault.cut_after = None
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Loopback]:
    root = tmp_path / "served"
    root.mkdir()
    state = Loopback(root=root, url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def subset_files() -> list[SourceFile]:
    return [f for name in SUBSET for f in SOURCES[name].files]


def pinned(path: str) -> SourceFile:
    source = file_source(path)
    assert source is not None, path
    return source


def upstream_key(file: SourceFile | str) -> str:
    """The URL path under the upstream host, e.g. hieunguyen7337/KeBioLM/<commit>/data/BIOSSES/train.tsv."""
    file = pinned(file) if isinstance(file, str) else file
    assert file.repo is not None and file.repo_path is not None
    return f"{file.repo.slug}/{file.repo.commit}/{file.repo_path}"


@pytest.fixture
def upstream(loopback: Loopback, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Loopback:
    """The served copy in the upstream layout: only what is published (no PubMedQA split files)."""
    for file in subset_files():
        if not file.generated:
            target = loopback.root / upstream_key(file)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shared_data / file.path, target)
    monkeypatch.setenv(UPSTREAM_ENV_VAR, loopback.url)
    return loopback


@pytest.fixture
def mirror(loopback: Loopback, shared_data: Path) -> Loopback:
    """The served copy in the data-home layout (what `--mirror` reads)."""
    for name in SUBSET:
        shutil.copytree(shared_data / name, loopback.root / name)
    return loopback


def _home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_pinned_urls_are_fixed_commits_with_a_hash_for_every_file_but_ebm_pico_train() -> None:
    files = [f for source in SOURCES.values() for f in source.files]
    assert len(SOURCES) == 13 and len(files) == 53
    assert [f.path for f in files if f.sha256 is None] == ["ebmnlp/train.tsv"]
    for file in files:
        if not file.generated:
            assert file.repo is not None and len(file.repo.commit) == 40
            assert f"/{file.repo.commit}/" in file.upstream_url("https://example.org")
    assert sorted(f.path for f in files if f.generated) == [
        "pubmedqa/pqal_fold0/dev_set.json",
        "pubmedqa/pqal_fold0/train_set.json",
        "pubmedqa/test_set.json",
    ]
    assert pinned("HoC/indexing/dev_pmid.tsv").repo_path == "indexing/HoC/dev_pmid.tsv"


def test_upstream_fetch_verifies_pinned_files_and_generates_pubmedqa_splits(
    upstream: Loopback, tmp_path: Path, shared_data: Path
) -> None:
    home = _home(tmp_path)
    report = fetch_datasets(SUBSET, to=home, accept_licenses=True, settings=FAST)
    assert report.passed, [o.error for o in report.failures]
    statuses = {o.path: o.status for o in report.outcomes}
    assert statuses == {
        **{f.path: FETCHED for f in subset_files() if not f.generated},
        **{f.path: GENERATED for f in subset_files() if f.generated},
    }
    for file in subset_files():  # byte-identical to the staged copy, whose hashes SOURCES.md records
        assert (home / file.path).read_bytes() == (shared_data / file.path).read_bytes()
    # only the pinned upstream paths were asked for, each once and whole
    assert sorted(upstream.log) == sorted((upstream_key(f), None) for f in subset_files() if not f.generated)
    manifest = Manifest.load(home)
    assert set(manifest.licenses) == {"BIOSSES", "pubmedqa"}
    assert manifest.licenses["BIOSSES"]["accepted_by"] == "--accept-licenses"
    assert "GPL-3.0" in manifest.licenses["BIOSSES"]["terms"]
    assert manifest.files["pubmedqa/test_set.json"]["source"].startswith("generated from")
    assert not (home / PARTIAL_DIR).exists()
    check = check_datasets(home, SUBSET)
    assert check.passed and {s.hash for d in check.datasets for s in d.splits.values()} == {"verified"}


def test_a_second_fetch_finds_everything_verified_and_downloads_nothing(
    upstream: Loopback, tmp_path: Path
) -> None:
    home = _home(tmp_path)
    fetch_datasets(SUBSET, to=home, accept_licenses=True, settings=FAST)
    upstream.log.clear()
    again = fetch_datasets(SUBSET, to=home, settings=FAST)  # terms already accepted: no flag needed
    assert again.passed and upstream.log == []
    assert {o.status for o in again.outcomes} == {KEPT} and again.bytes_received == 0


def test_an_interrupted_download_is_resumed_with_a_range_request(upstream: Loopback, tmp_path: Path) -> None:
    key = upstream_key(BIOSSES_TRAIN)
    upstream.faults[key] = Fault(cut_after=8000)
    report = fetch_datasets(["BIOSSES"], to=_home(tmp_path), accept_licenses=True, settings=FAST)
    assert report.passed
    assert upstream.requests_for(key) == [None, "bytes=8000-"]
    train = next(o for o in report.outcomes if o.path == BIOSSES_TRAIN)
    assert train.resumed_from == [8000] and train.bytes == 20669 and train.verified_by == "sha256"


def test_a_partial_file_left_by_an_earlier_run_is_resumed(upstream: Loopback, tmp_path: Path) -> None:
    home = _home(tmp_path)
    partial = home / PARTIAL_DIR / "BIOSSES" / "dev.tsv"
    partial.parent.mkdir(parents=True)
    partial.write_bytes((upstream.root / upstream_key("BIOSSES/dev.tsv")).read_bytes()[:5000])
    report = fetch_datasets(["BIOSSES"], to=home, accept_licenses=True, settings=FAST)
    dev = next(o for o in report.outcomes if o.path == "BIOSSES/dev.tsv")
    assert report.passed and dev.resumed_from == [5000] and dev.bytes == 5237 - 5000
    assert not partial.exists()


def test_a_server_that_ignores_range_gets_the_whole_file_written_afresh(
    upstream: Loopback, tmp_path: Path
) -> None:
    home = _home(tmp_path)
    partial = home / PARTIAL_DIR / BIOSSES_TRAIN
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 3000)  # not even a prefix: appending the rest would corrupt the file
    key = upstream_key(BIOSSES_TRAIN)
    upstream.faults[key] = Fault(ignore_range=True)
    report = fetch_datasets(["BIOSSES"], to=home, accept_licenses=True, settings=FAST)
    assert report.passed and upstream.requests_for(key) == ["bytes=3000-"]
    train = next(o for o in report.outcomes if o.path == BIOSSES_TRAIN)
    assert train.resumed_from == [] and train.bytes == 20669


def test_a_stale_partial_file_is_refused_after_the_resume_and_downloaded_again_whole(
    upstream: Loopback, tmp_path: Path
) -> None:
    home = _home(tmp_path)
    partial = home / PARTIAL_DIR / BIOSSES_TRAIN
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 3000)
    report = fetch_datasets(["BIOSSES"], to=home, accept_licenses=True, settings=FAST)
    assert report.passed and upstream.requests_for(upstream_key(BIOSSES_TRAIN)) == ["bytes=3000-", None]
    train = next(o for o in report.outcomes if o.path == BIOSSES_TRAIN)
    assert train.resumed_from == [3000] and train.verified_by == "sha256"


def test_a_corrupted_file_is_refused_and_not_placed(upstream: Loopback, tmp_path: Path) -> None:
    home = _home(tmp_path)
    key = upstream_key(BIOSSES_TRAIN)
    upstream.faults[key] = Fault(corrupt=True)
    report = fetch_datasets(["BIOSSES"], to=home, accept_licenses=True, settings=FAST)
    failed = [o for o in report.outcomes if o.status == FAILED]
    assert [o.path for o in failed] == [BIOSSES_TRAIN] and not report.passed
    assert (
        "sha256" in str(failed[0].error)
        and upstream.url in str(failed[0].error)
        and "not placed" in str(failed[0].error)
    )
    assert not (home / BIOSSES_TRAIN).exists() and not (home / PARTIAL_DIR / BIOSSES_TRAIN).exists()
    assert BIOSSES_TRAIN not in Manifest.load(home).files
    assert (home / "BIOSSES" / "dev.tsv").is_file()  # the other files went on


def test_a_404_is_not_retried_and_names_the_url_and_the_fix(mirror: Loopback, tmp_path: Path) -> None:
    (mirror.root / "BIOSSES" / "test.tsv").unlink()
    report = fetch_datasets(["BIOSSES"], to=_home(tmp_path), mirror=mirror.url + "/", accept_licenses=True)
    (failure,) = report.failures
    assert mirror.requests_for("BIOSSES/test.tsv") == [None]
    assert f"{mirror.url}/BIOSSES/test.tsv" in str(failure.error) and "404" in str(failure.error)
    assert "lacks it" in str(failure.error)


def test_5xx_answers_are_retried_with_backoff_then_succeed(upstream: Loopback, tmp_path: Path) -> None:
    key = upstream_key(BIOSSES_TRAIN)
    upstream.faults[key] = Fault(statuses=[500, 503])
    report = fetch_datasets(["BIOSSES"], to=_home(tmp_path), accept_licenses=True, settings=FAST)
    assert report.passed and len(upstream.requests_for(key)) == 3


def test_a_server_that_keeps_failing_stops_the_fetch_with_one_clear_error(
    upstream: Loopback, tmp_path: Path
) -> None:
    key = upstream_key("BIOSSES/dev.tsv")
    upstream.faults[key] = Fault(statuses=[500] * 10)
    with pytest.raises(FetchError) as raised:
        fetch_datasets(["BIOSSES"], to=_home(tmp_path), accept_licenses=True, settings=FAST)
    message = str(raised.value)
    assert f"{upstream.url}/{key}" in message and "HTTP 500" in message and "after 3 attempts" in message
    assert "--mirror" in message and "--data-dir" in message
    assert len(upstream.requests_for(key)) == 3


def test_a_server_that_hangs_times_out_with_a_clear_error(upstream: Loopback, tmp_path: Path) -> None:
    key = upstream_key("BIOSSES/dev.tsv")
    upstream.faults[key] = Fault(hang=True)
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out") as raised:
        fetch_datasets(["BIOSSES"], to=_home(tmp_path), accept_licenses=True, settings=FAST)
    assert time.monotonic() - started < 5
    assert "BIOSSES/dev.tsv" in str(raised.value) and upstream.url in str(raised.value)
    assert not (_home(tmp_path) / "BIOSSES" / "dev.tsv").exists()


def test_an_http_mirror_serves_the_data_home_layout(mirror: Loopback, tmp_path: Path) -> None:
    home = _home(tmp_path)
    report = fetch_datasets(SUBSET, to=home, mirror=mirror.url, accept_licenses=True, settings=FAST)
    assert report.passed and {o.status for o in report.outcomes} == {FETCHED}  # split files copied too
    assert {path for path, _ in mirror.log} == {f.path for f in subset_files()}
    assert check_datasets(home, SUBSET).passed


def test_a_mirror_folder_is_copied_with_the_same_checks(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "usb-stick"
    shutil.copytree(shared_data / "BIOSSES", folder / "BIOSSES")
    (folder / "BIOSSES" / "dev.tsv").write_text("pair_id\tsent1\tsent2\tscore\n", encoding="utf-8")
    home = _home(tmp_path)
    report = fetch_datasets(["BIOSSES"], to=home, mirror=folder, accept_licenses=True)
    assert [o.path for o in report.failures] == ["BIOSSES/dev.tsv"]
    assert (home / BIOSSES_TRAIN).read_bytes() == (shared_data / BIOSSES_TRAIN).read_bytes()
    assert not (home / "BIOSSES" / "dev.tsv").exists()
    with pytest.raises(Exception, match="neither an http"):
        fetch_datasets(["BIOSSES"], to=home, mirror=tmp_path / "no-such-folder", accept_licenses=True)


def test_terms_not_accepted_means_no_download(upstream: Loopback, tmp_path: Path) -> None:
    home = _home(tmp_path)
    with pytest.raises(LicenseNotAccepted, match="--accept-licenses"):
        fetch_datasets(["BIOSSES"], to=home, settings=FAST)
    asked: list[str] = []
    with pytest.raises(LicenseNotAccepted):
        fetch_datasets(["BIOSSES"], to=home, ask=lambda d: asked.append(d.name) or False, settings=FAST)
    assert asked == ["BIOSSES"] and upstream.log == []
    assert not (home / "BIOSSES").exists()
    report = fetch_datasets(["BIOSSES"], to=home, ask=lambda d: True, settings=FAST)
    assert report.passed and Manifest.load(home).licenses["BIOSSES"]["accepted_by"] == "interactive yes"
    (home / BIOSSES_TRAIN).unlink()  # accepted once: a later download needs no new yes
    assert fetch_datasets(["BIOSSES"], to=home, settings=FAST).passed


def _pico_file(path: Path, labelled_tokens: int) -> None:
    """A well-formed EBM PICO file with exactly `labelled_tokens` non-O tokens."""
    lines = ["-DOCSTART- (1)", ""]
    for index in range(labelled_tokens):
        lines.append(f"w{index % 7}\tI-PAR")
        if index % 40 == 39:
            lines += [".\tO", ""]
    path.write_text("\n".join([*lines, ".\tO", "", ""]), encoding="utf-8")


def test_a_file_without_a_pinned_hash_is_checked_by_its_blurb_count_and_hashed_into_the_manifest(
    upstream: Loopback, tmp_path: Path, shared_data: Path
) -> None:
    home = _home(tmp_path)
    for file in SOURCES["ebmnlp"].files:  # everything but train already in place and verified
        if file.sha256 is not None:
            (home / file.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shared_data / file.path, home / file.path)
    served = upstream.root / upstream_key("ebmnlp/train.tsv")
    served.parent.mkdir(parents=True, exist_ok=True)
    _pico_file(served, 339_166)
    wrong = fetch_datasets(["ebmnlp"], to=home, settings=FAST)  # ebmnlp states no license: no flag needed
    (failure,) = wrong.failures
    assert "339,166 labelled tokens, BLURB's table says 339,167" in str(failure.error)
    assert not (home / "ebmnlp" / "train.tsv").exists()

    _pico_file(served, 339_167)
    report = fetch_datasets(["ebmnlp"], to=home, settings=FAST)
    (train,) = [o for o in report.outcomes if o.status == FETCHED]
    assert train.path == "ebmnlp/train.tsv" and train.verified_by == "counts"
    recorded = Manifest.load(home).files["ebmnlp/train.tsv"]
    assert recorded["verified_by"] == "counts" and len(recorded["sha256"]) == 64
    (check,) = check_datasets(home, ["ebmnlp"]).datasets
    assert check.splits["train"].hash == "verified" and check.splits["train"].status == "ok"
    upstream.log.clear()
    assert fetch_datasets(["ebmnlp"], to=home, settings=FAST).passed and upstream.log == []


def test_data_check_says_verified_unverified_or_changed_since_fetched(
    mirror: Loopback, tmp_path: Path, shared_data: Path
) -> None:
    home = _home(tmp_path)
    fetch_datasets(["BIOSSES"], to=home, mirror=mirror.url, accept_licenses=True, settings=FAST)
    train = home / BIOSSES_TRAIN
    train.write_text(train.read_text(encoding="utf-8").replace("\t2.0\n", "\t2.2\n", 1), encoding="utf-8")
    (report,) = check_datasets(home, ["BIOSSES"]).datasets
    assert report.splits["train"].hash == "changed" and "since it was fetched" in str(
        report.splits["train"].hash_note
    )
    assert report.splits["dev"].hash == "verified"
    assert any("since it was fetched" in w for w in check_datasets(home, ["BIOSSES"]).warnings)
    # a file with no pinned hash that biotune did not fetch has nothing to be compared with
    (home / "ebmnlp").mkdir()
    _pico_file(home / "ebmnlp" / "train.tsv", 10)
    (pico,) = check_datasets(home, ["ebmnlp"]).datasets
    assert pico.splits["train"].hash == "unverified" and pico.splits["dev"].hash is None  # dev missing
    again = fetch_datasets(["BIOSSES"], to=home, mirror=mirror.url, settings=FAST)
    assert [o.path for o in again.placed] == [BIOSSES_TRAIN]  # the changed file is put back
    assert train.read_bytes() == (shared_data / BIOSSES_TRAIN).read_bytes()


def test_cli_fetch_and_check_json(mirror: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    help_text = runner.invoke(app, ["data", "fetch", "--help"], terminal_width=200).stdout
    for step in ("--to", "$BIOTUNE_DATA", "../shared/data", "user_data_dir", "--accept-licenses"):
        assert step in help_text
    home = _home(tmp_path)
    refused = runner.invoke(app, ["data", "fetch", "biosses", "--to", str(home), "--mirror", mirror.url])
    assert refused.exit_code != 0 and mirror.log == []
    fetched = runner.invoke(
        app,
        [
            "data",
            "fetch",
            "biosses",
            "--to",
            str(home),
            "--mirror",
            mirror.url,
            "--accept-licenses",
            "--json",
        ],
    )
    assert fetched.exit_code == 0, fetched.output
    summary = json.loads(fetched.stdout)
    assert summary["placed"] == 3 and summary["bytes_received"] == 5237 + 6639 + 20669
    assert summary["accepted_terms"] == {"BIOSSES": "--accept-licenses"}
    checked = runner.invoke(app, ["data", "check", "--json", "--dataset", "biosses", "--data-dir", str(home)])
    (dataset,) = json.loads(checked.stdout)["datasets"]
    assert {split["hash"] for split in dataset["splits"].values()} == {"verified"}
    monkeypatch.setenv("BIOTUNE_DATA", str(tmp_path / "env-home"))  # the data home when --to is not given
    again = runner.invoke(app, ["data", "fetch", "biosses", "--mirror", mirror.url, "--accept-licenses"])
    assert again.exit_code == 0 and (tmp_path / "env-home" / MANIFEST_NAME).is_file()


def test_fetch_defaults_to_the_user_data_folder_when_nothing_else_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOTUNE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", tmp_path / "absent")
    monkeypatch.setattr(paths, "user_data_home", lambda: tmp_path / "user-data")
    assert paths.fetch_home() == (tmp_path / "user-data", "the user data folder")
    assert paths.fetch_home(tmp_path / "x") == (tmp_path / "x", "--to")


SUITE_PROBE = """
import sys
sys.path.insert(0, {tests!r})
from _blurb_data import need_blurb_data, missing_data_summary
from pathlib import Path

def pytest_unconfigure(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = missing_data_summary(reporter.stats)
    if line:
        reporter.write_line(line)
"""


@pytest.mark.parametrize("ci", [False, True])
def test_the_suite_counts_skips_for_missing_data_and_fails_them_under_ci(tmp_path: Path, ci: bool) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "conftest.py").write_text(SUITE_PROBE.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    (probe / "test_probe.py").write_text(
        "from pathlib import Path\nfrom _blurb_data import need_blurb_data\n\n"
        "def test_needs_data():\n    need_blurb_data(Path('/no/such/blurb'))\n\n"
        "def test_other():\n    assert True\n",
        encoding="utf-8",
    )
    env = {"PATH": "/usr/bin:/bin", "CI": "true" if ci else "", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", str(probe)],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        timeout=120,
    )
    if ci:
        assert run.returncode == 1 and "1 failed, 1 passed" in run.stdout
        assert (
            run.stdout.strip().splitlines()[-1].startswith("1 tests FAILED for lack of BLURB data (CI=true)")
        )
    else:
        assert run.returncode == 0 and "1 passed, 1 skipped" in run.stdout
        last_line = run.stdout.strip().splitlines()[-1]
        assert last_line.startswith(
            "1 tests skipped for lack of BLURB data; fetch it with: biotune data fetch"
        )
        assert MISSING_REASON in run.stdout
