"""Moving one file's bytes into a partial file: over HTTP (resumable, retried) or from a mirror folder.

HTTP goes through `requests`; retries are `tenacity`'s: 5xx/429 answers, timeouts and dropped connections
are retried with exponential backoff, and every new attempt asks only for the bytes still missing
(`Range: bytes=N-`), so a connection cut at 90 % costs 10 % on the next try, in this run or the next one.
A 404 or another 4xx is not retried: the file is not there. Nothing here decides whether the bytes are
right; `biotune.data.fetch` verifies the partial file before it is placed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from biotune import __version__

CHUNK_BYTES = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


@dataclass(frozen=True)
class TransferSettings:
    read_timeout: float = 30.0  # seconds without a byte before an attempt counts as timed out
    connect_timeout: float = 15.0
    attempts: int = 5
    backoff: float = 1.0  # first wait in seconds; doubles each retry up to max_backoff
    max_backoff: float = 30.0


@dataclass
class Transfer:
    """What one file's transfer did: bytes received, attempts made, and where it resumed (Range starts)."""

    bytes_received: int = 0
    attempts: int = 0
    resumed_from: list[int] = field(default_factory=list)


class TransferFailed(Exception):
    """The bytes could not be had; `transient` says whether the source as a whole looks unreachable."""

    def __init__(self, reason: str, transient: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status = status


class _Retry(Exception):
    """An attempt that may succeed if repeated (server error, timeout, connection cut short)."""


ProgressCallback = Callable[[int | None, int], None]  # (total bytes or None, bytes already there)
AdvanceCallback = Callable[[int], None]


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = f"biotune/{__version__} (data fetch)"
    return session


_TRANSIENT = (
    _Retry,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,  # a body cut short (IncompleteRead) or a read timeout while streaming
)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT)


def _one_attempt(
    session: requests.Session,
    url: str,
    partial: Path,
    settings: TransferSettings,
    transfer: Transfer,
    on_start: ProgressCallback,
    on_advance: AdvanceCallback,
) -> None:
    transfer.attempts += 1
    have = partial.stat().st_size if partial.exists() else 0
    # identity: byte ranges and lengths then refer to the file itself, not to a compressed stream
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    timeout = (settings.connect_timeout, settings.read_timeout)
    with session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as response:
        status = response.status_code
        if status == 416 and have:  # the partial file is not a prefix of this file: start over
            partial.unlink()
            raise _Retry(f"HTTP 416 for a resume at byte {have}")
        if status >= 500 or status == 429:
            raise _Retry(f"HTTP {status} {response.reason}")
        if status >= 400:
            raise TransferFailed(f"HTTP {status} {response.reason}", transient=False, status=status)
        start = 0
        if status == 206 and have:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != have:
                partial.unlink()
                raise _Retry(f"the server answered a resume at byte {have} with another range")
            start = have
            transfer.resumed_from.append(have)
        length = response.headers.get("Content-Length")
        on_start(start + int(length) if length and length.isdigit() else None, start)
        partial.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("ab" if start else "wb") as out:
            # read1 hands over what has arrived: bytes received before a cut are kept for the resume
            # (requests' iter_content reads whole chunks and drops a chunk cut short)
            while chunk := response.raw.read1(CHUNK_BYTES):
                out.write(chunk)
                transfer.bytes_received += len(chunk)
                on_advance(len(chunk))


def _short_reason(exc: BaseException) -> str:
    """urllib3 wraps the socket error twice ("...Max retries exceeded... (Caused by X(...): reason)")."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    reason = getattr(inner, "reason", None) or inner
    return str(reason).split("): ", 1)[-1]


def download(
    session: requests.Session,
    url: str,
    partial: Path,
    settings: TransferSettings,
    on_start: ProgressCallback,
    on_advance: AdvanceCallback,
) -> Transfer:
    """Fetch `url` into `partial`, resuming from what `partial` already holds. Raises TransferFailed."""
    transfer = Transfer()
    retrying = Retrying(
        stop=stop_after_attempt(settings.attempts),
        wait=wait_exponential(multiplier=settings.backoff, max=settings.max_backoff),
        retry=retry_if_exception(_is_transient),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                _one_attempt(session, url, partial, settings, transfer, on_start, on_advance)
    except TransferFailed:
        raise
    except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
        raise TransferFailed(
            f"timed out (no answer within {settings.read_timeout:g} s) after {transfer.attempts} "
            f"attempts: {_short_reason(exc)}",
            transient=True,
        ) from exc
    except _TRANSIENT as exc:
        raise TransferFailed(
            f"{_short_reason(exc)} (after {transfer.attempts} attempts)", transient=True
        ) from exc
    except requests.RequestException as exc:  # a malformed URL or the like: repeating will not help
        raise TransferFailed(str(exc), transient=False) from exc
    return transfer


def copy_from_folder(
    source: Path, partial: Path, on_start: ProgressCallback, on_advance: AdvanceCallback
) -> Transfer:
    """Copy a mirror folder's file into `partial` (local copies need no resume: they restart cheaply)."""
    if not source.is_file():
        raise TransferFailed("no such file in the mirror folder", transient=False, status=404)
    transfer = Transfer(attempts=1)
    on_start(source.stat().st_size, 0)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, partial.open("wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            transfer.bytes_received += len(chunk)
            on_advance(len(chunk))
    return transfer
