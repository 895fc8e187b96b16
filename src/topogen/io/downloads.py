"""Download one file over HTTP(S), resumably, with retries and a checksum; or copy a local one.

The body streams into ``.<name>.part`` beside the target. An interrupted transfer (a cut
connection, a stalled server, a killed process) leaves that file behind, and the next attempt
or the next call asks only for the rest with ``Range: bytes=N-``; a server that answers 200
instead sends the whole file again. Only a complete file whose sha256 matches reaches ``out``,
by an atomic rename. ``file://`` URLs and plain paths are copied, so that a config can point
at a local copy when there is no network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from topogen.errors import TopogenError
from topogen.io.atomic import atomic_path
from topogen.io.provenance import sha256 as file_sha256

CHUNK = 1 << 16
USER_AGENT = "topogen-download/1"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(TopogenError):
    """A download failed: unreachable host, HTTP error, or a checksum that does not match."""


@dataclass(frozen=True)
class DownloadResult:
    url: str
    path: Path
    size: int
    sha256: str
    date: str  # UTC, ISO 8601, when the file was complete
    attempts: int
    resumed: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly, for a provenance manifest's ``extra``."""
        return {**asdict(self), "path": str(self.path)}


class _Transient(Exception):
    """One attempt failed in a way that another attempt may fix."""


class _Progress:
    """Print a line to stderr every ``every`` seconds or each 10% of the total, not per chunk."""

    def __init__(self, label: str, enabled: bool, every: float = 5.0) -> None:
        self.label, self.enabled, self.every = label, enabled, every
        self.start = self.last = time.monotonic()
        self.decile = 0
        self.received = 0  # bytes this call, for the rate

    def update(self, done: int, total: int | None, n: int) -> None:
        self.received += n
        if not self.enabled:
            return
        now = time.monotonic()
        decile = 10 * done // total if total else 0
        if now - self.last < self.every and decile <= self.decile:
            return
        self.last, self.decile = now, decile
        rate = self.received / max(now - self.start, 1e-6)
        of = f" of {_human(total)} ({100 * done // total}%)" if total else ""
        print(f"{self.label}: {_human(done)}{of} at {_human(rate)}/s", file=sys.stderr, flush=True)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _reason(exc: BaseException) -> str:
    """A short reason: 'Connection refused', 'timed out', 'HTTP 503 Service Unavailable'."""
    if isinstance(exc, urllib.error.HTTPError):
        return _one_line(f"HTTP {exc.code} {exc.reason}")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    elif isinstance(exc, urllib.error.URLError):
        return _one_line(exc.reason)
    if isinstance(exc, _Transient) and exc.__cause__ is not None:
        return _reason(exc.__cause__)
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror)
    return _one_line(exc) or type(exc).__name__


def download(
    url: str,
    out: str | os.PathLike[str],
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
    source: str = "",
    config_key: str = "",
    progress: bool = True,
) -> DownloadResult:
    """Fetch ``url`` to ``out`` atomically; verify ``sha256`` when given.

    ``timeout`` bounds every socket operation, so a server that stalls mid-body counts as a
    failed attempt. Connection errors, timeouts, cut transfers, HTTP 5xx and 429 are retried
    ``retries`` times, waiting ``backoff * 2**k`` seconds; other HTTP errors fail at once.
    ``source`` and ``config_key`` name the data set and the config key of a local copy in the
    one-line :class:`DownloadError`.
    """
    prefix = f"{source}: " if source else ""
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise DownloadError(
            f"{prefix}the expected sha256 {sha256!r} is not 64 hexadecimal digits "
            f"(checked before downloading {url})"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    parsed = urllib.parse.urlsplit(url)
    hint = (
        f"; set {config_key} in the config to a local copy"
        if config_key
        else "; point the config at a local copy"
    )
    if parsed.scheme in ("", "file"):
        local = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else url)
        return _copy(local, url, out, sha256, prefix, hint)
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"{prefix}unsupported URL scheme {parsed.scheme!r} in {url}")

    host = parsed.hostname or url
    part = out.with_name(f".{out.name}.part")
    label = source or host
    meter = _Progress(label, progress)
    seen: dict[str, str] = {}  # the first answer's ETag or Last-Modified, for If-Range
    resumed = False
    attempt = 0
    while True:
        attempt += 1
        try:
            resumed_now = _attempt(url, part, timeout, seen, meter)
            resumed = resumed or resumed_now
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # our .part is not a prefix of what the server has
                part.unlink(missing_ok=True)
            elif not (exc.code >= 500 or exc.code == 429):
                part.unlink(missing_ok=True)
                raise DownloadError(f"{prefix}{_reason(exc)} for {url}{hint}") from exc
            last: BaseException = exc
        except (OSError, http.client.HTTPException, _Transient) as exc:
            last = exc  # URLError (refused, DNS), timeouts, resets, cut bodies
        if attempt > retries:
            what = (
                f"{host} answered {_reason(last)}"
                if isinstance(last, urllib.error.HTTPError)
                else f"cannot reach {host} ({_reason(last)})"
            )
            raise DownloadError(f"{prefix}{what} after {attempt} attempts{hint}") from last
        time.sleep(backoff * 2 ** (attempt - 1))

    digest = file_sha256(part)
    if sha256 and digest.lower() != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{prefix}checksum mismatch for {url}: expected {sha256}, got {digest}")
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(part, 0o644)
    os.replace(part, out)
    return DownloadResult(url, out, out.stat().st_size, digest, _now(), attempt, resumed)


def _attempt(url: str, part: Path, timeout: float, seen: dict[str, str], meter: _Progress) -> bool:
    """One request; appends to ``part``. Returns whether it resumed."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if "validator" in seen:  # a changed file then comes whole, with 200
            headers["If-Range"] = seen["validator"]
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if validator and resp.status == 200:
            seen["validator"] = validator
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"unexpected Content-Range {resp.headers.get('Content-Range')}")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode, resumed = "ab", True
        else:  # 200: the whole body, whether or not we asked for a range
            offset, total, mode, resumed = 0, expected, "wb", False
        with open(part, mode) as fh:
            got = _stream(resp, fh, offset, total, meter)
    if expected is not None and got < expected:
        raise _Transient(f"connection closed after {got} of {expected} bytes")
    return resumed


def _stream(resp: IO[bytes], fh: IO[bytes], done: int, total: int | None, meter: _Progress) -> int:
    """Copy the body chunk by chunk; what arrived stays in ``fh`` even if a read fails."""
    got = 0
    while chunk := resp.read(CHUNK):
        fh.write(chunk)
        got += len(chunk)
        meter.update(done + got, total, len(chunk))
    return got


def _copy(
    local: Path, url: str, out: Path, sha256: str | None, prefix: str, hint: str
) -> DownloadResult:
    """A local copy: copied atomically to ``out`` with the same checksum check."""
    if not local.is_file():
        raise DownloadError(f"{prefix}local copy {local} does not exist{hint}")
    h = hashlib.sha256()
    with atomic_path(out) as tmp:
        with open(local, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
        digest = h.hexdigest()
        if sha256 and digest.lower() != sha256.lower():
            raise DownloadError(
                f"{prefix}checksum mismatch for {local}: expected {sha256}, got {digest}"
            )
    return DownloadResult(url, out, out.stat().st_size, digest, _now(), 1, False)
