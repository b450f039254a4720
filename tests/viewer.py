"""A local server that imitates the Legacy Surveys viewer's cutout service, built from the
viewer's own code (legacysurvey/imagine ``map/views.py``): ``write_cutout`` puts a
(bands, H, W) cube in HDU 0 with BANDS / BAND0.. cards and a TAN WCS with CRPIX = (W + 1) / 2
and CD1_1 < 0, and with ``&invvar`` an INVVAR HDU after it; ``needs_layer`` answers
``no such layer`` with HTTP 200; ``exposures_common(copsf=True)`` answers one PSF HDU per
band. With ``FakeViewer.sky`` set (a directory of coadd bricks in DR10 layout), cutouts are
Lanczos-3 resampled from those bricks, as the viewer resamples DR10 coadds; otherwise a
Gaussian source is drawn at the requested position.
"""

import io
import threading
import time
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

LAYERS = {"ls-dr10-south", "ls-dr10", "ls-dr9"}


def viewer_cutout(q: dict, bands_override: str | None = None, crpix_shift: float = 0.0) -> bytes:
    """What ``write_cutout`` returns: a Gaussian source (sigma 1.5 px) at the requested
    position rendered through the response WCS, amplitude 1, 2, 3 in g, r, z."""
    size, bands, ps = int(q["size"]), bands_override or q["bands"], float(q["pixscale"]) / 3600
    ra, dec = float(q["ra"]), float(q["dec"])
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(size + 1) / 2 + crpix_shift, (size + 1) / 2]
    w.wcs.cd = [[-ps, 0.0], [0.0, ps]]
    hdr = w.to_header()
    hdr["BANDS"] = bands
    for i, b in enumerate(bands):
        hdr[f"BAND{i}"] = b
    if FakeViewer.sky is not None:
        cube, ivar = sky_cutout(w, size, ra, dec)
    else:
        x0, y0 = w.world_to_pixel_values(ra, dec)
        yy, xx = np.mgrid[:size, :size]
        blob = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.5**2))
        cube = np.stack([(i + 1) * blob for i in range(len(bands))]).astype(np.float32)
        ivar = np.full_like(cube, 400.0)
        if dec > 80:  # outside the footprint: no pixels
            cube[:], ivar[:] = np.nan, 0.0
    hdul = fits.HDUList([fits.PrimaryHDU(cube, header=hdr)])
    hdul[0].header["IMAGETYP"] = "IMAGE"
    if "invvar" in q:
        iv = fits.ImageHDU(ivar, header=hdr)
        iv.header["IMAGETYP"] = "INVVAR"
        hdul.append(iv)
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def viewer_coadd_psf(q: dict) -> bytes:
    """One 63x63 PSF HDU per band: with FakeViewer.sky set, the mock sky's own PSF at the
    position (a Moffat of the brick's PSFSIZE, beta 3.5, the mock's default); otherwise
    Gaussians."""
    bands = q.get("bands", "grz")
    yy, xx = np.mgrid[:63, :63] - 31
    sky_psf = sky_psf_images(float(q["ra"]), float(q["dec"])) if FakeViewer.sky is not None else None
    if FakeViewer.sky is not None and sky_psf is None:
        return b"no CCDs overlapping"
    hdus = []
    for i, b in enumerate(bands):
        psf = np.exp(-(xx**2 + yy**2) / (2 * (1.5 + 0.1 * i) ** 2)).astype(np.float32)
        if sky_psf is not None:
            psf = sky_psf[b]
        h = (fits.PrimaryHDU if i == 0 else fits.ImageHDU)(psf / psf.sum())
        if i == 0:
            h.header["BANDS"] = bands
            for j, bb in enumerate(bands):
                h.header[f"BAND{j}"] = bb
        h.header["BAND"] = b
        hdus.append(h)
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


class FakeViewer(BaseHTTPRequestHandler):
    plan: list = []  # what to do for the next requests, in order; then serve normally
    requests: list = []
    times: list = []  # time.time() of each request, as it arrives
    sky = None  # (coadd_dir, bricknames): serve these bricks' pixels
    bricks: dict = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        type(self).requests.append(q)
        type(self).times.append(time.time())
        action = type(self).plan.pop(0) if type(self).plan else "ok"
        status, ctype, headers = 200, "application/fits", {}
        if q.get("layer") not in LAYERS:
            body, ctype = b"no such layer", "text/html"
        elif isinstance(action, int):
            status, body, ctype = action, b"busy", "text/plain"
        elif action == "retry-after-day":
            status, body, headers = 429, b"slow down", {"Retry-After": "86400"}
        elif action == "retry-after-date":  # RFC 9110 allows an HTTP date as well as seconds
            status, body, headers = 503, b"maintenance", {"Retry-After": formatdate(time.time() + 20, usegmt=True)}
        elif action == "html":
            body, ctype = b"<html>oops</html>", "text/html"
        elif url.path.endswith("coadd-psf/"):
            body = viewer_coadd_psf(q)
        else:
            body = viewer_cutout(q, bands_override="rzg" if action == "rzg" else None,
                                 crpix_shift=0.5 if action == "off-centre" else 0.0)
        if action == "cut-short":  # a body cut inside its last HDU, whose Content-Length says it is whole
            body = body[: 3 * len(body) // 4]
        length = str(len(body))
        if action == "huge":
            length = str(300 << 20)
        if action == "slow":
            time.sleep(1.0)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", length)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if action in ("truncated", "huge") else body)

    def log_message(self, *args):
        pass


@contextmanager
def serve():
    """Run the imitation viewer on a free local port; yields its base URL (``.../viewer/``)."""
    FakeViewer.plan, FakeViewer.requests, FakeViewer.times = [], [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeViewer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/viewer/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        FakeViewer.sky = None


def lanczos3(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, H, W) sampled at 0-based (x, y) (M,) with a normalised Lanczos-3 kernel -> (B, M);
    NaN where the kernel leaves the image."""
    offs = np.arange(-2, 4)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    xi, yi = x0[:, None] + offs, y0[:, None] + offs  # (M, 6)
    wx = np.sinc(x[:, None] - xi) * np.sinc((x[:, None] - xi) / 3)
    wy = np.sinc(y[:, None] - yi) * np.sinc((y[:, None] - yi) / 3)
    h, w = img.shape[-2:]
    valid = (xi.min(1) >= 0) & (xi.max(1) < w) & (yi.min(1) >= 0) & (yi.max(1) < h)
    vals = img[:, np.clip(yi, 0, h - 1)[:, :, None], np.clip(xi, 0, w - 1)[:, None, :]]  # (B, M, 6, 6)
    out = np.einsum("bmij,mi,mj->bm", vals, wy, wx) / (wy.sum(1) * wx.sum(1))
    out[:, ~valid] = np.nan
    return out


def _sky_brick(ra: float, dec: float):
    """(name, CoaddBrick) of the FakeViewer.sky brick holding (ra, dec), or None."""
    from lensfinder.sky.coadds import CoaddBrick
    coadd_dir, bricks = FakeViewer.sky
    for name in bricks:
        brick = FakeViewer.bricks.setdefault(name, CoaddBrick(coadd_dir, name))
        bx, by = brick.world_to_pixel(ra, dec)
        if 0 <= bx[0] < brick.shape[1] and 0 <= by[0] < brick.shape[0]:
            return name, brick
    return None


def sky_psf_images(ra: float, dec: float):
    """{band: 63x63 float32 PSF} of the FakeViewer.sky brick holding (ra, dec), or None."""
    from lensfinder.psf import moffat_kernels
    from lensfinder.sky.bricks import coadd_path
    found = _sky_brick(ra, dec)
    if found is None:
        return None
    coadd_dir = FakeViewer.sky[0]
    return {b: moffat_kernels(np.array(fits.getheader(coadd_path(coadd_dir, found[0], "image", b), 1)["PSFSIZE"]),
                              3.5, size=63).astype(np.float32) for b in "grz"}


def sky_cutout(w: WCS, size: int, ra: float, dec: float):
    """(image, invvar) cubes of the response grid ``w`` resampled from the brick of
    FakeViewer.sky that holds (ra, dec); all NaN off every brick."""
    found = _sky_brick(ra, dec)
    if found is not None:
        brick = found[1]
        yy, xx = np.mgrid[:size, :size]
        r, d = w.pixel_to_world_values(xx.ravel(), yy.ravel())
        px, py = brick.world_to_pixel(r, d)
        img = lanczos3(brick.image, px, py).reshape(3, size, size).astype(np.float32)
        iv = lanczos3(brick.invvar, px, py).reshape(3, size, size).astype(np.float32)
        return img, np.where(np.isfinite(iv), iv, 0).astype(np.float32)
    return np.full((3, size, size), np.nan, np.float32), np.zeros((3, size, size), np.float32)
