"""Client for the Legacy Surveys public cutout service (``cutout.fits``).

Fetches ``layer=ls-dr10`` grz cutouts at 0.262"/pix as FITS, with an on-disk cache
(a cutout is fetched once, ever), retries with exponential backoff on throttling and
server errors, and a client-side rate limit so a large candidate list does not hammer
the public server.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits

from lensfinder import PIXSCALE, STAMP_SIZE
from lensfinder.tables import atomic_path

DEFAULT_URL = "https://www.legacysurvey.org/viewer/cutout.fits"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class CutoutServiceError(RuntimeError):
    """A cutout that could not be fetched or parsed; the message names the URL."""


class RateLimiter:
    """Allow at most one request per ``min_interval_s`` seconds (thread-safe)."""

    def __init__(self, min_interval_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.min_interval_s = min_interval_s
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self.min_interval_s


@dataclass
class CutoutService:
    """Cached, rate-limited, retrying client. ``fetch(ra, dec)`` returns a (3, S, S)
    float32 array in nanomaggies (bands in ``bands`` order)."""

    cache_dir: Path
    base_url: str = DEFAULT_URL
    layer: str = "ls-dr10"
    pixscale: float = PIXSCALE
    bands: str = "grz"
    size: int = STAMP_SIZE
    max_retries: int = 5
    backoff_s: float = 1.0
    min_interval_s: float = 0.5
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    n_requests: int = field(default=0, init=False)
    n_cache_hits: int = field(default=0, init=False)

    def __post_init__(self):
        self.cache_dir = Path(self.cache_dir)
        self._limiter = RateLimiter(self.min_interval_s, sleep=self.sleep)

    def url(self, ra: float, dec: float) -> str:
        query = urllib.parse.urlencode(
            {"ra": f"{ra:.7f}", "dec": f"{dec:.7f}", "layer": self.layer,
             "pixscale": f"{self.pixscale:g}", "bands": self.bands, "size": self.size}
        )
        return f"{self.base_url}?{query}"

    def cache_path(self, ra: float, dec: float) -> Path:
        key = hashlib.sha1(self.url(ra, dec).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{self.layer}_{ra:.7f}_{dec:+.7f}_{key[:10]}.fits"

    def _download(self, url: str) -> bytes:
        last = None
        for attempt in range(self.max_retries + 1):
            self._limiter.wait()
            self.n_requests += 1
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS:
                    raise CutoutServiceError(f"{url}: HTTP {exc.code} {exc.reason} (not retried)") from exc
                last = f"HTTP {exc.code} {exc.reason}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                delay = float(retry_after) if retry_after and retry_after.isdigit() else self.backoff_s * 2**attempt
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                delay = self.backoff_s * 2**attempt
            if attempt < self.max_retries:
                self.sleep(delay)
        raise CutoutServiceError(f"{url}: gave up after {self.max_retries + 1} attempts (last error: {last})")

    def _parse(self, url: str, payload: bytes) -> np.ndarray:
        try:
            with fits.open(io.BytesIO(payload)) as hdul:
                data = hdul[0].data
                data = None if data is None else np.asarray(data, dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise CutoutServiceError(f"{url}: response is not FITS ({exc})") from exc
        want = (len(self.bands), self.size, self.size)
        if data is None or data.shape != want:
            got = None if data is None else data.shape
            raise CutoutServiceError(f"{url}: expected a {want} image, got {got}")
        return data

    def fetch(self, ra: float, dec: float) -> np.ndarray:
        """Cutout centred on (ra, dec) degrees: (len(bands), size, size) float32 nanomaggies."""
        path = self.cache_path(ra, dec)
        url = self.url(ra, dec)
        if path.exists():
            self.n_cache_hits += 1
            return self._parse(f"{path} (cache of {url})", path.read_bytes())
        payload = self._download(url)
        image = self._parse(url, payload)  # validate before caching: never cache an error page
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(payload)
        return image
