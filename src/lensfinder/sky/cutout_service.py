"""Client for the Legacy Surveys viewer's cutout service (``cutout.fits``, ``coadd-psf``).

What the viewer serves (legacysurvey/imagine, ``map/views.py``: ``write_cutout``,
``exposures_common``), and what this client therefore asks for and checks:

* ``layer=ls-dr10-south``: the DR10 DECaLS images our sweeps come from. ``ls-dr10`` is a
  split layer that serves DR9 BASS/MzLS north of Dec 32.375.
* The cutout is a (bands, H, W) cube in HDU 0 with ``BANDS`` / ``BAND0..`` cards and a TAN
  WCS whose reference pixel is the target at CRPIX = (W + 1) / 2 (1-based) and CD1_1 < 0;
  with ``&invvar`` a second HDU (IMAGETYP INVVAR) holds the inverse variances. We request
  an odd size, STAMP_SIZE + 1, so the target sits on the centre of pixel STAMP_SIZE / 2
  (0-based), and crop to STAMP_SIZE: the target lands on pixel (32, 32) of a 64x64 stamp,
  exactly as in a cutout from a local coadd brick. The response WCS is checked to put the
  target there to < 0.05 px.
* Service pixels are Lanczos-3 resampled onto the requested grid, not native coadd pixels
  (their noise is correlated between neighbours); stamps made from them are marked so.
* An unknown layer answers HTTP 200 with the text ``no such layer``.
* ``coadd-psf`` answers one HDU per band (the inverse-variance weighted PSFEx models of the
  CCDs at that position), ``BANDS`` in the primary header, ``BAND`` in each.

The client is polite and resumable: a client-side rate limit, a bounded number of
concurrent requests, retries with exponential backoff on throttling and server errors,
``Retry-After`` obeyed up to a cap, responses larger than a limit refused, and an on-disk
cache keyed by a hash of the request (a cutout is fetched once, ever; a corrupt cache entry
is fetched again). Invalid coordinates are rejected before any request.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import io
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from lensfinder import PIXSCALE, STAMP_SIZE
from lensfinder.tables import atomic_path

DEFAULT_URL = "https://www.legacysurvey.org/viewer/cutout.fits"
DEFAULT_PSF_URL = "https://www.legacysurvey.org/viewer/coadd-psf/"
LAYER = "ls-dr10-south"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
log = logging.getLogger(__name__)
CENTRING_TOLERANCE_PIX = 0.05


class CutoutServiceError(RuntimeError):
    """A request that could not be completed or a response that is not what the viewer
    serves; the message names the URL (or cache file)."""


class PermanentServiceError(CutoutServiceError):
    """An error no retry can heal -- an unknown layer, an HTTP 4xx other than 408 / 429, a
    response that is not FITS: the job stops, naming the URL, the status and the body's
    first line, instead of skipping every stamp."""


class IncompleteResponse(CutoutServiceError):
    """A FITS payload cut short (its HDUs end past the bytes received): fetched again."""


class NoData(CutoutServiceError):
    """The service answered, but there are no pixels there (outside the footprint, all NaN,
    no CCDs): a counted skip, never cached."""


RATE_FILE = ".request_clock"  # in the cache directory: the run-wide rate limiter's state


class RateLimiter:
    """At most one request per ``min_interval_s`` seconds over every thread *and process*
    that shares ``path``: the next allowed time (Unix seconds) lives in that file, read and
    advanced under an exclusive ``flock`` (held while waiting, so callers queue). The jobs of
    a run share the cutout cache directory, where the service keeps this file, so the run as
    a whole keeps the configured rate however many jobs fetch at once (issue 28: with one
    limiter per job, 64 shards asked the public viewer for up to ~128 requests/s)."""

    def __init__(self, path, min_interval_s: float, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.path, self.min_interval_s = Path(path), min_interval_s
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()  # flock is per open file: threads queue here first
        self.last_granted: float | None = None  # when the last request was let through

    def wait(self) -> None:
        if self.min_interval_s <= 0:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    f.seek(0)
                    text = f.read().strip()
                    now = self._clock()
                    # a time further ahead than one interval is a clock step, not a queue
                    nxt = min(float(text) if text else 0.0, now + self.min_interval_s)
                    if now < nxt:
                        self._sleep(nxt - now)
                        now = max(self._clock(), nxt)  # a sleep may overrun: count from when we go
                    self.last_granted = now
                    f.seek(0)
                    f.truncate()
                    f.write(repr(now + self.min_interval_s))
                    f.flush()
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class ServiceCutout:
    """A service cutout cropped to the stamp grid: ``image`` and ``invvar`` (3, 64, 64)
    float32 (nanomaggies, 1/nanomaggies^2) in g, r, z order, the target on pixel (32, 32)."""
    image: np.ndarray
    invvar: np.ndarray
    centre_offset_pix: float  # |target - (32, 32)| by the response WCS


def check_position(ra: float, dec: float) -> None:
    """Raise ValueError for a position no request should be made for."""
    if not (isinstance(ra, (int, float, np.floating)) and isinstance(dec, (int, float, np.floating))):
        raise ValueError(f"ra, dec must be numbers, got {ra!r}, {dec!r}")
    if not (math.isfinite(ra) and math.isfinite(dec)) or not (0.0 <= ra < 360.0) or not (-90.0 <= dec <= 90.0):
        raise ValueError(f"invalid position ra={ra!r}, dec={dec!r} (need 0 <= ra < 360, -90 <= dec <= 90 degrees)")


def read_fits(where: str, payload: bytes) -> fits.HDUList:
    """Every HDU of a FITS payload, read now: a truncated or non-FITS payload is a
    :class:`CutoutServiceError` naming ``where``. Truncation is checked against each HDU's
    declared size, not by turning astropy's warning into an error: ``warnings.catch_warnings``
    is not thread-safe, and fetches run in threads."""
    if not payload.startswith(b"SIMPLE  ="):
        raise PermanentServiceError(f"{where}: the response is not FITS (HTTP 200; first line: "
                                    f"{first_line(payload)!r})")
    try:
        hdul = fits.open(io.BytesIO(payload), lazy_load_hdus=False)
        for h in hdul:
            if h.fileinfo()["datLoc"] + h.size > len(payload):
                raise IncompleteResponse(f"{where}: response is not a complete FITS file (HDU {h.name} ends "
                                         f"past the {len(payload)} bytes received)")
            h.data  # noqa: B018 -- read every HDU now
        return hdul
    except (OSError, ValueError, TypeError) as exc:
        raise CutoutServiceError(f"{where}: response is not a complete FITS file ({exc})") from exc


def first_line(body: bytes, limit: int = 120) -> str:
    """The first line of a response body, for error messages."""
    return body[:limit].decode("utf-8", "replace").strip().splitlines()[0] if body.strip() else ""


def parse_coadd_psf(where: str, payload: bytes) -> dict[str, np.ndarray]:
    """{band: (H, W) float32 PSF image} of a ``coadd-psf`` FITS file: one HDU per band,
    each with a BAND card, BANDS/BAND<i> in the primary header. ``where`` names it in errors."""
    if payload[:80].strip().lower().startswith(b"no ccds overlapping"):
        raise NoData(f"{where}: no CCDs overlapping")
    hdul = read_fits(where, payload)
    bands = _header_bands(hdul[0].header, where)
    if len(hdul) != len(bands) or any(h.header.get("BAND") != b for h, b in zip(hdul, bands)):
        raise CutoutServiceError(f"{where}: expected one HDU per band {bands!r} with BAND cards")
    return {b: np.asarray(h.data, dtype=np.float32) for b, h in zip(bands, hdul)}


def _header_bands(hdr, where: str) -> str:
    bands = str(hdr.get("BANDS", ""))
    listed = "".join(str(hdr.get(f"BAND{i}", "")) for i in range(len(bands)))
    if not bands or listed != bands:
        raise CutoutServiceError(f"{where}: header BANDS={bands!r} / BAND0..={listed!r} do not name the bands")
    return bands


@dataclass
class CutoutService:
    """Cached, rate-limited, retrying client of the viewer's ``cutout.fits`` and
    ``coadd-psf`` endpoints (see the module docstring for what is requested and checked)."""

    cache_dir: Path
    base_url: str = DEFAULT_URL
    psf_url: str = DEFAULT_PSF_URL
    layer: str = LAYER
    pixscale: float = PIXSCALE
    bands: str = "grz"
    size: int = STAMP_SIZE
    max_retries: int = 5
    backoff_s: float = 1.0
    max_retry_after_s: float = 120.0  # a server asking for a day's pause is not waited for
    min_interval_s: float = 0.5
    max_concurrent: int = 4
    max_response_bytes: int = 4 << 20  # a 65x65 grz cube + invvar is ~110 kB
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    n_requests: int = field(default=0, init=False)
    n_cache_hits: int = field(default=0, init=False)

    def __post_init__(self):
        self.cache_dir = Path(self.cache_dir)
        self._limiter = RateLimiter(self.cache_dir / RATE_FILE, self.min_interval_s, sleep=self.sleep)
        self._count = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, self.max_concurrent))

    # ------------------------------------------------------------------ requests
    @property
    def request_size(self) -> int:
        """Odd, so the service's CRPIX (W + 1) / 2 is the centre of a pixel."""
        return self.size + 1 if self.size % 2 == 0 else self.size

    def url(self, ra: float, dec: float) -> str:
        query = urllib.parse.urlencode(
            {"ra": f"{ra:.7f}", "dec": f"{dec:.7f}", "layer": self.layer, "pixscale": f"{self.pixscale:g}",
             "bands": self.bands, "size": self.request_size, "invvar": ""})
        return f"{self.base_url}?{query}"

    def psf_request_url(self, ra: float, dec: float) -> str:
        query = urllib.parse.urlencode({"ra": f"{ra:.7f}", "dec": f"{dec:.7f}", "layer": self.layer,
                                        "bands": self.bands})
        return f"{self.psf_url}?{query}"

    def cache_path(self, url: str) -> Path:
        """One file per distinct request, named by a hash of the URL's query (safe for any
        parameter value; the host is not part of the key)."""
        key = hashlib.sha256(urllib.parse.urlsplit(url).query.encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.fits"

    def _retry_delay(self, exc: urllib.error.HTTPError, attempt: int) -> float:
        """Seconds before the next attempt: the server's ``Retry-After`` (seconds or an HTTP
        date, parsed by urllib3) up to ``max_retry_after_s``, else exponential backoff."""
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        if retry_after:
            try:
                return min(Retry().parse_retry_after(retry_after), self.max_retry_after_s)
            except InvalidHeader:
                pass
        return self.backoff_s * 2**attempt

    def _read(self, resp, url: str) -> bytes:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_response_bytes:
            raise CutoutServiceError(f"{url}: response of {int(length)} bytes exceeds the limit "
                                     f"{self.max_response_bytes} (not read)")
        body = resp.read(self.max_response_bytes + 1)
        if len(body) > self.max_response_bytes:
            raise CutoutServiceError(f"{url}: response exceeds the limit {self.max_response_bytes} bytes")
        if length and length.isdigit() and len(body) < int(length):  # connection dropped: retried
            raise http.client.IncompleteRead(body, int(length) - len(body))
        return body

    def _download(self, url: str) -> bytes:
        # The attempt loop is ours, not urllib3's Retry loop: every attempt, retries included,
        # must queue on the run-wide rate limiter and take a concurrency slot, which a retry
        # inside urllib3 would bypass. urllib3 parses Retry-After (:meth:`_retry_delay`).
        last = None
        for attempt in range(self.max_retries + 1):
            self._limiter.wait()
            with self._count:
                self.n_requests += 1
            try:
                with self._slots, urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                    return self._read(resp, url)
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS:
                    raise PermanentServiceError(f"{url}: HTTP {exc.code} {exc.reason} (not retried; first line: "
                                                f"{first_line(exc.read(4096))!r})") from exc
                last, delay = f"HTTP {exc.code} {exc.reason}", self._retry_delay(exc, attempt)
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.IncompleteRead) as exc:
                last, delay = f"{type(exc).__name__}: {exc}", self.backoff_s * 2**attempt
            if attempt < self.max_retries:
                self.sleep(delay)
        raise CutoutServiceError(f"{url}: gave up after {self.max_retries + 1} attempts (last error: {last})")

    # ------------------------------------------------------------------ responses
    def _check_layer(self, where: str, payload: bytes) -> None:
        if payload[:80].strip().lower().startswith(b"no such layer"):
            raise PermanentServiceError(f"{where}: the service has no layer {self.layer!r} (HTTP 200; first line: "
                                        f"{first_line(payload)!r})")

    def _hdus(self, where: str, payload: bytes) -> fits.HDUList:
        self._check_layer(where, payload)
        return read_fits(where, payload)

    def _centre_offset(self, where: str, hdr, ra: float, dec: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(hdr, naxis=2)
        if not wcs.has_celestial or wcs.pixel_scale_matrix[0, 0] >= 0:
            raise CutoutServiceError(f"{where}: no TAN WCS with CD1_1 < 0 (RA increasing to the left)")
        x, y = wcs.world_to_pixel_values(ra, dec)
        c = self.size // 2  # 0-based pixel of the target in the cropped stamp (and the request)
        return float(np.hypot(x - c, y - c))

    def parse_cutout(self, where: str, payload: bytes, ra: float, dec: float) -> ServiceCutout:
        """The cropped cutout of a ``cutout.fits`` response for target (ra, dec), checked."""
        hdul = self._hdus(where, payload)
        want = (len(self.bands), self.request_size, self.request_size)
        if len(hdul) < 2 or hdul[0].data is None or hdul[0].data.shape != want or hdul[1].data is None \
                or hdul[1].data.shape != want:
            shapes = [None if h.data is None else h.data.shape for h in hdul]
            raise CutoutServiceError(f"{where}: expected image and invvar HDUs of shape {want}, got {shapes}")
        if _header_bands(hdul[0].header, where) != self.bands:
            raise CutoutServiceError(f"{where}: bands {hdul[0].header['BANDS']!r}, asked for {self.bands!r}")
        offset = self._centre_offset(where, hdul[0].header, ra, dec)
        if offset > CENTRING_TOLERANCE_PIX:
            raise CutoutServiceError(f"{where}: the target is {offset:.3f} px from the stamp centre by the "
                                     f"response WCS (tolerance {CENTRING_TOLERANCE_PIX})")
        s = self.size
        image = np.asarray(hdul[0].data[:, :s, :s], dtype=np.float32)
        invvar = np.asarray(hdul[1].data[:, :s, :s], dtype=np.float32)
        if not np.isfinite(image).any() or not (invvar > 0).any():
            raise NoData(f"{where}: no pixels at ra={ra}, dec={dec} (all NaN or zero invvar)")
        return ServiceCutout(image=image, invvar=invvar, centre_offset_pix=offset)

    def parse_psf(self, where: str, payload: bytes) -> dict[str, np.ndarray]:
        """{band: (H, W) float32 PSF image} of a ``coadd-psf`` response."""
        self._check_layer(where, payload)
        return parse_coadd_psf(where, payload)

    # ------------------------------------------------------------------ fetching
    def _cached(self, url: str, parse):
        """Parse the cached response of ``url``, fetching (and caching) it when absent or
        corrupt. Nothing that fails to parse is ever cached."""
        path = self.cache_path(url)
        if path.exists():
            try:
                result = parse(f"{path} (cache of {url})", path.read_bytes())
                with self._count:
                    self.n_cache_hits += 1
                return result
            except NoData:
                raise
            except CutoutServiceError:
                path.unlink(missing_ok=True)  # corrupt entry (e.g. a disk filled mid-write): fetch again
        for attempt in range(self.max_retries + 1):
            payload = self._download(url)
            try:
                result = parse(url, payload)
                break
            except IncompleteResponse as exc:  # cut short under a matching Content-Length
                if attempt == self.max_retries:
                    raise CutoutServiceError(f"{exc} (after {self.max_retries + 1} attempts)") from exc
                self.sleep(self.backoff_s * 2**attempt)
        with atomic_path(path) as tmp:
            tmp.write_bytes(payload)
        return result

    def fetch(self, ra: float, dec: float) -> ServiceCutout:
        """The grz cutout and invvar centred on (ra, dec) degrees, target on pixel (32, 32)."""
        check_position(ra, dec)
        return self._cached(self.url(ra, dec), lambda where, p: self.parse_cutout(where, p, ra, dec))

    def fetch_psf(self, ra: float, dec: float) -> dict[str, np.ndarray]:
        """{band: coadd PSF image} at (ra, dec) degrees from ``coadd-psf``."""
        check_position(ra, dec)
        return self._cached(self.psf_request_url(ra, dec), self.parse_psf)

    def fetch_many(self, positions, progress: bool = False):
        """Fetch every (ra, dec) with up to ``max_concurrent`` requests in flight. Returns
        (results, reasons): per position a ServiceCutout or None, and None or why it failed
        ('invalid_position', 'no_data', 'service_error'; see :func:`count_reasons`). A
        :class:`PermanentServiceError` is raised, not counted: no other request would fare
        better."""
        positions = list(positions)

        def one(pos):
            try:
                return self.fetch(*pos), None
            except ValueError:
                return None, "invalid_position"
            except NoData:
                return None, "no_data"
            except PermanentServiceError:
                raise
            except CutoutServiceError as exc:
                log.warning("cutout skipped: %s", exc)
                return None, "service_error"

        from tqdm import tqdm
        with ThreadPoolExecutor(max_workers=max(1, self.max_concurrent)) as pool:
            out = list(tqdm(pool.map(one, positions), total=len(positions), disable=not progress,
                            desc="cutout service", unit="cutout"))
        return [r for r, _ in out], [why for _, why in out]


def count_reasons(reasons) -> dict[str, int]:
    """{reason: count} of the failures among :meth:`CutoutService.fetch_many`'s reasons."""
    counts: dict[str, int] = {}
    for why in reasons:
        if why:
            counts[why] = counts.get(why, 0) + 1
    return counts
