"""The public cutout-service client, against a local HTTP server (never the internet)."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from astropy.io import fits

from lensfinder.sky.cutout_service import CutoutService, CutoutServiceError, RateLimiter


class FakeLegacySurvey(BaseHTTPRequestHandler):
    plan: list = []  # status codes to answer before serving FITS
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server API)
        q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        type(self).requests.append(q)
        status = type(self).plan.pop(0) if type(self).plan else 200
        if status == "html":
            body, status, ctype = b"<html>oops</html>", 200, "text/html"
        elif status != 200:
            body, ctype = b"busy", "text/plain"
        else:
            size, nb = int(q["size"]), len(q["bands"])
            data = np.full((nb, size, size), float(q["ra"]), dtype=np.float32)
            buf = io.BytesIO()
            fits.PrimaryHDU(data).writeto(buf)
            body, ctype = buf.getvalue(), "application/fits"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeLegacySurvey.plan, FakeLegacySurvey.requests = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeLegacySurvey)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/viewer/cutout.fits"
    httpd.shutdown()
    httpd.server_close()


def _client(url, tmp_path, **kw):
    sleeps = []
    kw.setdefault("min_interval_s", 0.0)
    return CutoutService(cache_dir=tmp_path, base_url=url, sleep=sleeps.append, **kw), sleeps


def test_fetch_sends_dr10_parameters_and_caches(server, tmp_path):
    client, _ = _client(server, tmp_path)
    img = client.fetch(150.25, 2.5)
    assert img.shape == (3, 64, 64) and img.dtype == np.float32 and img[0, 0, 0] == np.float32(150.25)
    q = FakeLegacySurvey.requests[0]
    assert (q["layer"], q["pixscale"], q["bands"], q["size"]) == ("ls-dr10", "0.262", "grz", "64")
    again = client.fetch(150.25, 2.5)
    np.testing.assert_array_equal(img, again)
    assert len(FakeLegacySurvey.requests) == 1 and client.n_cache_hits == 1
    # a new client with the same cache directory does not ask either
    other, _ = _client(server, tmp_path)
    other.fetch(150.25, 2.5)
    assert len(FakeLegacySurvey.requests) == 1


def test_retries_with_exponential_backoff(server, tmp_path):
    FakeLegacySurvey.plan = [503, 429]
    client, sleeps = _client(server, tmp_path, backoff_s=0.5)
    client.fetch(10.0, -1.0)
    assert len(FakeLegacySurvey.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_gives_up_with_a_clear_error(server, tmp_path):
    FakeLegacySurvey.plan = [503] * 10
    client, sleeps = _client(server, tmp_path, max_retries=2, backoff_s=0.1)
    with pytest.raises(CutoutServiceError, match=r"ra=10\.0000000.*gave up after 3 attempts.*HTTP 503"):
        client.fetch(10.0, -1.0)
    assert len(sleeps) == 2


def test_client_errors_are_not_retried(server, tmp_path):
    FakeLegacySurvey.plan = [404]
    client, sleeps = _client(server, tmp_path)
    with pytest.raises(CutoutServiceError, match="HTTP 404"):
        client.fetch(1.0, 1.0)
    assert len(FakeLegacySurvey.requests) == 1 and sleeps == []


def test_error_page_is_not_cached(server, tmp_path):
    FakeLegacySurvey.plan = ["html"]
    client, _ = _client(server, tmp_path)
    with pytest.raises(CutoutServiceError, match="not FITS"):
        client.fetch(2.0, 2.0)
    assert not list(tmp_path.rglob("*.fits"))
    assert client.fetch(2.0, 2.0).shape == (3, 64, 64)


def test_rate_limiter_spaces_requests():
    now = [100.0]
    slept = []

    def sleep(dt):
        slept.append(dt)
        now[0] += dt

    limiter = RateLimiter(0.5, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.wait()
    assert slept == [0.5, 0.5, 0.5]
    now[0] += 10
    limiter.wait()
    assert len(slept) == 3
