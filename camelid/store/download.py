"""Download one file over HTTP: resume, retries with backoff, sha256 verification and disk-space checks.

The caller owns the file names. `download` writes into the partial path it is given and returns the sha256 of
the complete file; verifying it against a digest the caller trusts and renaming it into place is the caller's
job, so a crash never leaves half a file under its final name.

Resuming across calls relies on a small sidecar JSON file next to the partial (`<partial>.json`) that keeps the
URL, the server's validator (ETag, else Last-Modified) and the total size. The next call sends
`Range: bytes=N-` with `If-Range: <validator>`: an unchanged file comes back as 206 and is appended to, a
changed one as 200 and replaces the partial.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from camelid import __version__, config
from camelid.errors import CamelidError

USER_AGENT = f"camelid/{__version__}"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # read/write/pool 30 s, connect 10 s
MAX_BACKOFF = 30.0  # seconds: the longest wait between two attempts
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is ignored (we do not stall a pull for minutes)
PROGRESS_INTERVAL = 0.1  # seconds between two progress calls (the last one always comes)
_HASH_BLOCK = 1 << 20

ProgressCallback = Callable[[int, int | None], None]


class DownloadError(CamelidError):
    """A download that failed for good: HTTP error, verification failure, full disk or retries exhausted."""


class _Retry(Exception):
    """One attempt failed in a way worth another try: network trouble, a timeout, HTTP 429 or 5xx."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def sidecar_path(partial: Path) -> Path:
    """The JSON file next to `partial` that lets a later call resume it (`<partial>.json`)."""
    return partial.with_name(partial.name + ".json")


def default_retries() -> int:
    """CAMELID_PULL_RETRIES as an int; its declared default when the variable is not a number."""
    try:
        return max(0, int(config.CAMELID_PULL_RETRIES.get()))
    except ValueError:
        return int(config.CAMELID_PULL_RETRIES.default)


def download(
    url: str,
    partial: Path,
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    retries: int | None = None,
    backoff: float = 0.5,
    headers: dict[str, str] | None = None,
    client: httpx.Client | None = None,
) -> str:
    """Download `url` into `partial` (resuming what is already there) and return the file's sha256 hex digest.

    `retries` is the number of further attempts after a failed one (default: CAMELID_PULL_RETRIES). A failed
    attempt that got further into the file than any before it resets the count, so a flaky link that keeps
    making progress finishes while a dead one gives up. The wait before retry k (from 0) is `backoff * 2**k` seconds, capped at 30 s,
    or the server's Retry-After when that is longer but at most 60 s.

    `progress(completed, total)` counts bytes already on disk from an earlier call too; `total` is None while
    unknown. A caller-supplied `client` is used as is (its timeouts, proxies); redirects are followed anyway.

    On a size or sha256 mismatch the partial and its sidecar are deleted. On any other failure both stay, so
    the next call resumes. On success the sidecar is deleted and the partial is left for the caller.
    """
    job = _Download(
        url=url,
        partial=Path(partial),
        expected_sha256=expected_sha256.lower() if expected_sha256 else None,
        expected_size=expected_size,
        progress=_Throttled(progress),
        headers=dict(headers or {}),
    )
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=TIMEOUT, follow_redirects=True, headers={"User-Agent": USER_AGENT})
    try:
        return job.run(client, default_retries() if retries is None else max(0, retries), backoff)
    finally:
        if own_client:
            client.close()


class _Throttled:
    """Calls the progress callback at most every PROGRESS_INTERVAL seconds, and always for the final call."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.last = float("-inf")

    def __call__(self, completed: int, total: int | None, *, final: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if final or now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            self.callback(completed, total)


class _Download:
    """The state of one `download` call, shared by its attempts."""

    def __init__(self, *, url: str, partial: Path, expected_sha256: str | None, expected_size: int | None,
                 progress: _Throttled, headers: dict[str, str]) -> None:
        self.url = url
        self.partial = partial
        self.sidecar = sidecar_path(partial)
        self.expected_sha256 = expected_sha256
        self.expected_size = expected_size
        self.progress = progress
        self.headers = headers
        saved = self._read_sidecar()
        self.validator: str | None = saved.get("validator")
        self.total: int | None = expected_size if expected_size is not None else saved.get("size")
        self.resumable = True  # False once a server answered a range request with the wrong range
        self.hasher = hashlib.sha256()
        self.hashed = 0  # bytes of the partial that `hasher` has seen

    # --- the retry loop -------------------------------------------------------------------------------------

    def run(self, client: httpx.Client, retries: int, backoff: float) -> str:
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        failures = 0
        high_water = self._size()  # the most bytes the partial has held; only new ground counts as progress
        while True:
            offset = self._prepare()
            try:
                if self._attempt(client, offset):
                    break
                continue  # the partial was discarded (416 on a stale one, a bad range): start over at once
            except _Retry as exc:
                written = self._size()
                if written > high_water and self._can_resume():
                    failures = 0
                high_water = max(high_water, written)
                if failures >= retries:
                    total = f" of {self.total}" if self.total is not None else ""
                    raise DownloadError(
                        f"download of {self.url} failed after {failures + 1} "
                        f"attempt{'s' if failures else ''} ({exc.reason}): {written}{total} bytes fetched "
                        f"into {self.partial}; run the pull again to {'resume' if written else 'retry'}") from None
                time.sleep(_delay(backoff, failures, exc.retry_after))
                failures += 1
        return self._finish()

    def _prepare(self) -> int:
        """Bytes of the partial to keep for this attempt, hashed; discards a partial that cannot be resumed."""
        offset = self._size()
        too_long = self.total is not None and offset > self.total
        if offset and (too_long or not self._can_resume()):
            offset = self._truncate()
        self._sync_hash(offset)
        self._check_space(offset)
        return offset

    def _can_resume(self) -> bool:
        """Whether bytes already on disk may be kept and appended to."""
        # Without a validator the server cannot tell us whether the file changed since those bytes were
        # written. With an expected sha256 the final check catches a changed file; without one, start over.
        return self.resumable and (self.validator is not None or self.expected_sha256 is not None)

    def _finish(self) -> str:
        size = self._size()
        self._sync_hash(size)
        digest = self.hasher.hexdigest()
        self.progress(size, size, final=True)
        if self.expected_size is not None and size != self.expected_size:
            self._discard()
            raise DownloadError(f"download of {self.url} failed verification: size mismatch: "
                                f"expected {self.expected_size} bytes, got {size}")
        if self.expected_sha256 is not None and digest != self.expected_sha256:
            self._discard()
            raise DownloadError(f"download of {self.url} failed verification: sha256 mismatch: "
                                f"expected {self.expected_sha256}, got {digest}")
        self.sidecar.unlink(missing_ok=True)
        return digest

    # --- one HTTP request -----------------------------------------------------------------------------------

    def _attempt(self, client: httpx.Client, offset: int) -> bool:
        """One GET. True: the partial is complete. False: start over now. Raises _Retry or DownloadError."""
        request_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **self.headers}
        if offset:
            request_headers["Range"] = f"bytes={offset}-"
            if self.validator:
                request_headers["If-Range"] = self.validator
        try:
            with client.stream("GET", self.url, headers=request_headers, follow_redirects=True) as response:
                return self._receive(response, offset)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise DownloadError(f"cannot download {self.url}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        except (httpx.RequestError, httpx.InvalidURL) as exc:  # too many redirects, bad URL, undecodable body
            raise DownloadError(f"cannot download {self.url}: {exc}") from None

    def _receive(self, response: httpx.Response, offset: int) -> bool:
        status = response.status_code
        if status == 416 and offset:
            known = _content_range(response.headers.get("content-range"))[2]
            if known is None:
                known = self.total
            if known == offset:  # the partial already holds the whole file
                return True
            self._truncate()
            return False
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status} {response.reason_phrase}".rstrip(),
                         _retry_after(response.headers.get("retry-after")))
        if status not in (200, 206):
            raise DownloadError(f"download of {self.url} failed: HTTP {status} {response.reason_phrase}".rstrip())

        if status == 206:
            start, _, total = _content_range(response.headers.get("content-range"))
            if start != offset:
                if not offset:
                    raise DownloadError(f"download of {self.url} failed: the server sent part of the file "
                                        f"({response.headers.get('content-range')}) when asked for all of it")
                self.resumable = False  # a server that answers ranges wrongly gets plain requests from now on
                self._truncate()
                return False
            if total is None:
                total = _content_length(response, offset)
            mode = "ab"
        else:  # 200: the server ignored the range, or the file changed since the partial was written
            if offset:
                offset = self._truncate()
            total = _content_length(response, 0)
            mode = "wb"

        if total is not None and self.expected_size is not None and total != self.expected_size:
            self._discard()
            raise DownloadError(f"download of {self.url} failed verification: size mismatch: the server offers "
                                f"{total} bytes, expected {self.expected_size}")
        self.total = total
        self.validator = _validator(response)
        self._write_sidecar()
        self._check_space(offset)

        completed = offset
        self.progress(completed, total)
        try:
            with open(self.partial, mode) as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    self.hasher.update(chunk)
                    self.hashed += len(chunk)
                    completed += len(chunk)
                    self.progress(completed, total)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadError(self._space_message(self._size(), None)) from None
            raise DownloadError(f"cannot write {self.partial}: {exc.strerror or exc}") from None
        if total is not None and completed < total:
            raise _Retry(f"the connection closed after {completed} of {total} bytes")
        return True

    # --- the partial and its sidecar ------------------------------------------------------------------------

    def _size(self) -> int:
        try:
            return self.partial.stat().st_size
        except FileNotFoundError:
            return 0

    def _truncate(self) -> int:
        if self.partial.exists():
            with open(self.partial, "wb"):
                pass
        self.hasher = hashlib.sha256()
        self.hashed = 0
        return 0

    def _discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.hashed = 0

    def _sync_hash(self, size: int) -> None:
        """Make `hasher` cover exactly the first `size` bytes on disk (on resume: the bytes already there)."""
        if self.hashed == size:
            return
        self.hasher = hashlib.sha256()
        self.hashed = 0
        if not size:
            return
        with open(self.partial, "rb") as f:
            while self.hashed < size:
                block = f.read(min(_HASH_BLOCK, size - self.hashed))
                if not block:
                    break
                self.hasher.update(block)
                self.hashed += len(block)

    def _read_sidecar(self) -> dict:
        """The saved validator and size, or {} when there is no sidecar or it belongs to another URL."""
        try:
            saved = json.loads(self.sidecar.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict) or saved.get("url") != self.url:
            return {}
        validator = saved.get("validator")
        size = saved.get("size")
        return {"validator": validator if isinstance(validator, str) and validator else None,
                "size": size if isinstance(size, int) and size >= 0 else None}

    def _write_sidecar(self) -> None:
        data = json.dumps({"url": self.url, "validator": self.validator, "size": self.total})
        tmp = self.sidecar.with_name(self.sidecar.name + ".tmp")
        try:
            tmp.write_text(data)
            os.replace(tmp, self.sidecar)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadError(self._space_message(self._size(), None)) from None
            raise DownloadError(f"cannot write {self.sidecar}: {exc.strerror or exc}") from None

    def _check_space(self, offset: int) -> None:
        """Fail before downloading when the total is known and the disk cannot hold the rest."""
        if self.total is None or self.total <= offset:
            return
        free = shutil.disk_usage(self.partial.parent).free
        if free < self.total - offset:
            raise DownloadError(self._space_message(offset, free))

    def _space_message(self, written: int, free: int | None) -> str:
        message = f"not enough disk space to download {self.url} into {self.partial.parent}: {written} bytes written"
        if self.total is not None and self.total > written:
            message += f", {self.total - written} more needed"
        if free is not None:
            message += f", {free} free"
        return message


# --- HTTP header helpers ---------------------------------------------------------------------------------------


def _delay(backoff: float, failures: int, retry_after: float | None) -> float:
    delay = min(backoff * 2**failures, MAX_BACKOFF)
    if retry_after is not None and retry_after <= MAX_RETRY_AFTER:
        delay = max(delay, retry_after)
    return max(0.0, delay)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(start, end, total) of `bytes start-end/total` or `bytes */total`; None for parts absent or unparsable."""
    if not value:
        return None, None, None
    unit, _, rest = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None, None
    span, _, total_text = rest.partition("/")
    total = int(total_text) if total_text.strip().isdigit() else None
    first, _, last = span.partition("-")
    if first.strip().isdigit() and last.strip().isdigit():
        return int(first), int(last), total
    return None, None, total


def _content_length(response: httpx.Response, offset: int) -> int | None:
    """The total file size implied by Content-Length (plus the range offset); None when it is not the size."""
    length = response.headers.get("content-length", "")
    if not length.strip().isdigit():
        return None
    if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
        return None  # the length counts compressed bytes, we write decoded ones
    return offset + int(length)


def _validator(response: httpx.Response) -> str | None:
    """A validator for If-Range: a strong ETag, else Last-Modified (weak ETags are not allowed in If-Range)."""
    etag = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("last-modified") or None
