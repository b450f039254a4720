"""The cutout-service client, against a local server that imitates the Legacy Surveys
viewer (tests/viewer.py; never the internet)."""

import numpy as np
import pytest

from lensfinder.sky.cutout_source import check_job_skips
from lensfinder.sky.cutout_service import (CutoutService, CutoutServiceError, NoData, PermanentServiceError, RateLimiter,
                                          count_reasons)
from viewer import FakeViewer

def _client(url, tmp_path, **kw):
    sleeps = []
    kw.setdefault("min_interval_s", 0.0)
    return CutoutService(cache_dir=tmp_path / "cache", base_url=url + "cutout.fits", psf_url=url + "coadd-psf/",
                         sleep=sleeps.append, **kw), sleeps


def test_fetch_asks_for_dr10_south_with_invvar_and_centres_the_target_on_pixel_32(server, tmp_path):
    client, _ = _client(server, tmp_path)
    c = client.fetch(150.25, 2.5)
    q = FakeViewer.requests[0]
    assert (q["layer"], q["pixscale"], q["bands"], q["size"]) == ("ls-dr10-south", "0.262", "grz", "65")
    assert "invvar" in q
    assert c.image.shape == c.invvar.shape == (3, 64, 64) and c.image.dtype == np.float32
    yy, xx = np.mgrid[:64, :64]
    w = c.image[1] / c.image[1].sum()
    assert abs((w * xx).sum() - 32) < 0.05 and abs((w * yy).sum() - 32) < 0.05  # as a local cutout
    assert c.centre_offset_pix < 1e-6 and (c.invvar == 400).all()
    np.testing.assert_allclose(c.image[2], 3 * c.image[0], rtol=1e-6, atol=1e-12)  # g, r, z order kept
    again = client.fetch(150.25, 2.5)
    np.testing.assert_array_equal(c.image, again.image)
    other, _ = _client(server, tmp_path)  # a new client with the same cache does not ask either
    other.fetch(150.25, 2.5)
    assert len(FakeViewer.requests) == 1 and client.n_cache_hits == 1


def test_unknown_layer_is_a_clear_error_and_not_cached(server, tmp_path):
    client, _ = _client(server, tmp_path, layer="ls-dr99")
    with pytest.raises(CutoutServiceError, match="no layer 'ls-dr99'"):
        client.fetch(10.0, 0.0)
    assert not list((tmp_path / "cache").rglob("*.fits")) if (tmp_path / "cache").exists() else True


@pytest.mark.parametrize("action, message", [("rzg", "bands 'rzg'"), ("off-centre", "0.500 px from the stamp centre")])
def test_band_order_and_centring_are_checked_against_the_response_header(server, tmp_path, action, message):
    FakeViewer.plan = [action]
    client, _ = _client(server, tmp_path)
    with pytest.raises(CutoutServiceError, match=message):
        client.fetch(20.0, 1.0)


def test_retries_with_exponential_backoff_and_a_capped_retry_after(server, tmp_path):
    FakeViewer.plan = [503, 429, "retry-after-day"]
    client, sleeps = _client(server, tmp_path, backoff_s=0.5, max_retry_after_s=30.0)
    client.fetch(10.0, -1.0)
    assert len(FakeViewer.requests) == 4 and sleeps == [0.5, 1.0, 30.0]


def test_a_retry_after_given_as_an_http_date_is_obeyed(server, tmp_path):
    FakeViewer.plan = ["retry-after-date"]  # 20 s from now
    client, sleeps = _client(server, tmp_path, backoff_s=0.5, max_retry_after_s=30.0)
    client.fetch(10.0, -1.0)
    assert len(FakeViewer.requests) == 2 and 17.0 <= sleeps[0] <= 21.0  # not the 0.5 s backoff


def test_gives_up_with_a_clear_error_and_client_errors_are_not_retried(server, tmp_path):
    FakeViewer.plan = [503] * 3
    client, sleeps = _client(server, tmp_path, max_retries=2, backoff_s=0.1)
    with pytest.raises(CutoutServiceError, match=r"ra=10\.0000000.*gave up after 3 attempts.*HTTP 503"):
        client.fetch(10.0, -1.0)
    FakeViewer.plan = [404]
    with pytest.raises(CutoutServiceError, match="HTTP 404.*not retried"):
        client.fetch(1.0, 1.0)
    assert len(FakeViewer.requests) == 4 and len(sleeps) == 2


def test_a_response_over_the_size_limit_is_refused_unread(server, tmp_path):
    FakeViewer.plan = ["huge"]
    client, _ = _client(server, tmp_path)
    with pytest.raises(CutoutServiceError, match="exceeds the limit"):
        client.fetch(3.0, 3.0)


def test_truncated_and_slow_responses_are_retried(server, tmp_path):
    FakeViewer.plan = ["truncated", "slow"]
    client, sleeps = _client(server, tmp_path, timeout_s=0.3, backoff_s=0.01)
    assert client.fetch(4.0, 4.0).image.shape == (3, 64, 64)
    assert len(FakeViewer.requests) == 3 and len(sleeps) == 2


def test_error_page_and_empty_cutout_are_not_cached(server, tmp_path):
    FakeViewer.plan = ["html"]
    client, _ = _client(server, tmp_path)
    with pytest.raises(PermanentServiceError, match=r"ra=2\.0000000.*not FITS \(HTTP 200; first line: '<html>oops</html>'\)"):
        client.fetch(2.0, 2.0)
    assert client.fetch(2.0, 2.0).image.shape == (3, 64, 64)
    with pytest.raises(NoData, match="no pixels"):
        client.fetch(2.0, 85.0)
    with pytest.raises(NoData):
        client.fetch(2.0, 85.0)
    assert len(FakeViewer.requests) == 4  # the empty cutout was asked for twice: never cached


def test_a_corrupt_cache_entry_is_fetched_again(server, tmp_path):
    client, _ = _client(server, tmp_path)
    client.fetch(5.0, 5.0)
    entry = client.cache_path(client.url(5.0, 5.0))
    entry.write_bytes(entry.read_bytes()[:5000])  # e.g. the disk filled up mid-copy
    assert client.fetch(5.0, 5.0).image.shape == (3, 64, 64)
    assert len(FakeViewer.requests) == 2 and entry.stat().st_size > 5000


@pytest.mark.parametrize("ra, dec", [(float("nan"), 0.0), (10.0, float("inf")), (-1.0, 0.0), (360.0, 0.0),
                                     (10.0, 91.0), ("10", 0.0)])
def test_invalid_coordinates_are_rejected_before_any_request(server, tmp_path, ra, dec):
    client, _ = _client(server, tmp_path)
    with pytest.raises(ValueError, match="ra"):
        client.fetch(ra, dec)
    assert FakeViewer.requests == [] and client.n_requests == 0


def test_coadd_psf_has_one_hdu_per_band(server, tmp_path):
    client, _ = _client(server, tmp_path)
    psf = client.fetch_psf(150.0, 2.0)
    assert list(psf) == ["g", "r", "z"] and all(p.shape == (63, 63) for p in psf.values())
    assert FakeViewer.requests[0]["layer"] == "ls-dr10-south"
    np.testing.assert_allclose([p.sum() for p in psf.values()], 1.0, rtol=1e-5)


def test_fetch_many_counts_skips_per_reason_and_bounds_concurrency(server, tmp_path):
    client, _ = _client(server, tmp_path, max_concurrent=3)
    positions = [(10.0 + i * 0.01, 0.0) for i in range(6)] + [(float("nan"), 0.0), (10.0, 85.0)]
    results, reasons = client.fetch_many(positions)
    assert [r is None for r in results] == [False] * 6 + [True, True]
    assert count_reasons(reasons) == {"invalid_position": 1, "no_data": 1}
    assert len(FakeViewer.requests) == 7


def test_rate_limiter_spaces_requests(tmp_path):
    now = [100.0]
    slept = []

    def sleep(dt):
        slept.append(dt)
        now[0] += dt

    limiter = RateLimiter(tmp_path / "clock", 0.5, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.wait()
    assert slept == [0.5, 0.5, 0.5]
    now[0] += 10
    limiter.wait()
    assert len(slept) == 3


def test_errors_no_retry_can_heal_stop_fetch_many_naming_url_status_and_body(server, tmp_path):
    """An unknown layer (HTTP 200 'no such layer'), a 404 and a non-FITS page are not
    counted skips: fetch_many raises, naming the URL, the status and the body's first line
    (before, every stamp of a typo'd layer became a 'service_error' skip and the job ended
    with exit 0)."""
    client, _ = _client(server, tmp_path, layer="ls-dr10-typo")
    with pytest.raises(PermanentServiceError, match=r"cutout\.fits\?ra=10\.0.*layer=ls-dr10-typo.*no layer "
                                                    r"'ls-dr10-typo' \(HTTP 200; first line: 'no such layer'\)"):
        client.fetch_many([(10.0, 0.0), (10.01, 0.0)])
    FakeViewer.plan = [404]
    client, _ = _client(server, tmp_path)
    with pytest.raises(PermanentServiceError, match=r"HTTP 404 .*not retried; first line: 'busy'"):
        client.fetch_many([(11.0, 0.0)])
    FakeViewer.plan = ["html"]
    with pytest.raises(PermanentServiceError, match="not FITS"):
        client.fetch_many([(12.0, 0.0)])


def test_a_job_losing_too_many_cutouts_or_writing_nothing_fails():
    """check_job_skips: service-error skips above the ceiling, or every row lost to the
    source, fail the job naming the counts; skips below the ceiling and other reasons do not."""
    ok = {"n_rows": 100, "n_written": 90, "skipped": {"service_error": 5, "edge": 5}}
    check_job_skips(ok, 0.05, "part-1-of-2")
    with pytest.raises(RuntimeError, match=r"part-1-of-2: 6 of 100 cutouts failed .*max_failure_fraction 0.05"):
        check_job_skips({**ok, "n_written": 89, "skipped": {"service_error": 6, "edge": 5}}, 0.05, "part-1-of-2")
    with pytest.raises(RuntimeError, match=r"none of 4 rows gave a stamp \(skipped: \{'no_data': 4\}\)"):
        check_job_skips({"n_rows": 4, "n_written": 0, "skipped": {"no_data": 4, "edge": 0}}, 0.05, "x")
    check_job_skips({"n_rows": 0, "n_written": 0, "skipped": {}}, 0.05, "an empty shard")
    # a shard whose one row sits on a coverage gap wrote nothing, but its source is alive
    check_job_skips({"n_rows": 1, "n_written": 0, "skipped": {"zero_invvar": 1}}, 0.05, "a gap")


def test_only_the_settings_that_decide_the_pixels_are_rule_params():
    from lensfinder.sky.cutout_source import CutoutSourceConfig
    a = CutoutSourceConfig.from_dict({"source": "service", "min_interval_s": 0.1, "max_retries": 5})
    b = CutoutSourceConfig.from_dict({"source": "service", "min_interval_s": 1.0, "max_retries": 2, "timeout_s": 5.0,
                                      "cache_dir": "/elsewhere", "max_failure_fraction": 0.5})
    assert a.as_params() == b.as_params() and set(a.as_params()) == {"source", "url", "psf_url", "layer"}
    assert CutoutSourceConfig.from_dict({"source": "service", "layer": "ls-dr9"}).as_params() != a.as_params()
    # a job gets its politeness back from the config section
    job = CutoutSourceConfig.for_job(a.as_params(), {"min_interval_s": 1.0, "max_retries": 2}, "res")
    assert (job.min_interval_s, job.max_retries, job.cache_dir) == (1.0, 2, "res/cutout_cache")


def _fetch_in_process(url, cache, positions, min_interval_s, log):
    client = CutoutService(cache_dir=cache, base_url=url + "cutout.fits", psf_url=url + "coadd-psf/",
                           min_interval_s=min_interval_s, max_concurrent=4)
    wait = client._limiter.wait

    def logged():  # when each request was let through, as the shared clock granted it
        wait()
        with open(log, "a") as f:
            f.write(f"{client._limiter.last_granted!r}\n")
    client._limiter.wait = logged
    client.fetch_many(positions)


def test_one_request_rate_for_every_process_of_a_run(server, tmp_path):
    """Issue 28: three jobs (processes) fetching at once through one cache directory keep the
    run's rate together -- before, each job had its own limiter and the viewer saw three
    times the rate. The times are those at which the limiters let requests through (the
    server's arrival times jitter with the machine's load: a timed test would be flaky)."""
    import multiprocessing as mp

    from viewer import FakeViewer
    FakeViewer.requests = []
    interval = 0.2
    logs = [tmp_path / f"job{j}.log" for j in range(3)]
    jobs = [mp.get_context("fork").Process(target=_fetch_in_process,
                                           args=(server, tmp_path / "cache",
                                                 [(150.0 + 0.01 * i + j, 2.0) for i in range(5)], interval, logs[j]))
            for j in range(3)]
    for p in jobs:
        p.start()
    for p in jobs:
        p.join(120)
        assert p.exitcode == 0
    t = np.sort([float(x) for log in logs for x in log.read_text().split()])
    assert len(t) == 15 and len(FakeViewer.requests) == 15
    assert np.diff(t).min() >= interval - 1e-9, np.diff(t)  # never two within one interval, across jobs


def test_a_fits_cut_short_under_a_matching_content_length_is_retried(server, tmp_path):
    """Issue 28: the body is truncated but the header agrees with it, so only the FITS
    parse sees it -- before, that was a final service error; now it is fetched again."""
    FakeViewer.plan = ["cut-short"]
    client, sleeps = _client(server, tmp_path)
    c = client.fetch(150.25, 2.5)
    assert c.image.shape == (3, 64, 64) and client.n_requests == 2 and len(sleeps) == 1
    FakeViewer.plan = ["cut-short"] * 3
    client, _ = _client(server, tmp_path / "b", max_retries=2)
    with pytest.raises(CutoutServiceError, match="not a complete FITS file.*after 3 attempts"):
        client.fetch(150.26, 2.5)
