"""What the mock sky holds: number counts, DESI-like LRGs that are never crowded, detection,
and pixels only where the pipeline reads them."""


import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from lensfinder import PIXSCALE
from lensfinder.sky.bricks import bricks_in_box, brick_center
from lensfinder.sky.coadds import CoaddBrick
from lensfinder.sky.counts import GALAXY_COUNTS, STAR_COUNTS, draw_magnitudes
from lensfinder.sky.lrg_model import draw_lrgs, load
from lensfinder.sky.mock_config import MockSkyConfig
from lensfinder.sky.render import mixture_size
from lensfinder.sky.profiles import sersic_mog
from lensfinder.sky.scene import detected, make_brick_catalog, place_lrgs
from lensfinder.sky.source import resolve_mock_bricks

from conftest import SMALL_SKY


def test_galaxy_counts_follow_their_anchors():
    """1e4 per deg^2 brighter than r = 22; slopes 0.6 / 0.45 / 0.35 dex per mag either side
    of r = 16 and 21; continuous at the breaks."""
    g = GALAXY_COUNTS
    assert g.integral(10.0, 22.0) == pytest.approx(1.0e4, rel=1e-3)
    for m, slope in ((14.0, 0.6), (18.0, 0.45), (23.0, 0.35)):
        assert np.log10(g.density(m + 0.5) / g.density(m)) == pytest.approx(slope * 0.5, rel=1e-6)
    for b in (16.0, 21.0):
        assert g.density(b - 1e-9) == pytest.approx(g.density(b + 1e-9), rel=1e-6)
    assert STAR_COUNTS.density(17.0) == pytest.approx(150.0)


def test_drawn_magnitudes_follow_the_counts():
    m = draw_magnitudes(np.random.default_rng(0), GALAXY_COUNTS, 2.0, 18.0, 24.0)
    expected = 2.0 * GALAXY_COUNTS.integral(18.0, 24.0)
    assert abs(m.size - expected) < 5 * np.sqrt(expected)
    for lo in (18.0, 20.0, 22.0, 23.0):
        n = ((m >= lo) & (m < lo + 1)).sum()
        want = 2.0 * GALAXY_COUNTS.integral(lo, lo + 1)
        assert abs(n - want) < 5 * np.sqrt(want) + 2, (lo, n, want)
    assert draw_magnitudes(np.random.default_rng(0), GALAXY_COUNTS, 1.0, 25.0, 25.0).size == 0


def test_shipped_lrg_model_is_desitargets():
    """The JSON in the package is the first columns of desitarget's DR7.1 LRG mixtures."""
    data = pytest.importorskip("desitarget").__path__[0] + "/mock/data/dr7.1/"
    mixtures, fractions = load()
    for t, mix in mixtures.items():
        with fits.open(data + f"gmm_lrg_{t.lower()}.fits") as hdul:
            k = mix.means.shape[1]
            np.testing.assert_allclose(mix.weights, hdul[0].data, rtol=1e-8)
            np.testing.assert_allclose(mix.means, hdul[1].data[:, :k], rtol=1e-7, atol=1e-8)  # 8 decimals kept
            np.testing.assert_allclose(mix.covariances, hdul[2].data[:, :k, :k], rtol=1e-6, atol=1e-12)
    assert sum(fractions.values()) == pytest.approx(1.0) and fractions["DEV"] > 0.5


def test_lrg_draws_resemble_desi_targets():
    lrg = draw_lrgs(np.random.default_rng(1), 20000)
    assert 19.3 < np.median(lrg["z"]) < 19.8 and 1.3 < np.median(lrg["r"] - lrg["z"]) < 1.7
    assert ((lrg["re"] == 0) == (lrg["type"] == "PSF")).all() and 0.6 < np.median(lrg["re"][lrg["re"] > 0]) < 1.3


def test_lrgs_are_never_crowded_except_physical_pairs():
    cfg = MockSkyConfig(bricks=("1501p020",), lrg_density=2800.0, lrg_pair_fraction=0.05)
    x, y = place_lrgs(np.random.default_rng(2), cfg)
    n_expected = 2800 * cfg.brick_area_deg2
    assert abs(x.size - n_expected) < 5 * np.sqrt(n_expected)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) * PIXSCALE
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1)
    assert 0 < (nearest < 20.0).mean() < 0.2 and nearest.min() >= 3.0 - 1e-6
    # every LRG closer than 20" to another is a physical pair's member or next to one
    in_pair = (nearest >= 3.0 - 1e-6) & (nearest <= 10.0 + 1e-6)
    i, j = np.nonzero(np.triu(d < 20.0))
    assert (in_pair[i] | in_pair[j]).all()


def test_only_detections_are_catalogued_but_faint_objects_are_rendered():
    cols, render = make_brick_catalog(SMALL_SKY, SMALL_SKY.bricks[0])
    assert (detected(cols, SMALL_SKY.detect_snr) | (cols["MOCK_POP"] == "lrg")).all()  # catalogued = detected or LRG-like
    snr = np.max([cols[f"FLUX_{b}"] * np.sqrt(cols[f"FLUX_IVAR_{b}"]) for b in "GRZ"], axis=0)
    assert (snr[cols["MOCK_POP"] != "lrg"] >= SMALL_SKY.detect_snr).all()
    # the render list holds more objects than the catalogue shows near the windows: the
    # undetected faint galaxies (r ~ 24-25) add their light to the coadds
    faint = render["flux"]["r"] < 10 ** (-0.4 * (24.0 - 22.5))
    assert faint.sum() > 20


def test_pixels_exist_only_in_windows_around_lrgs(mock_sky):
    name = SMALL_SKY.bricks[0]
    brick = CoaddBrick(mock_sky.coadd_dir, name)
    cat = pq.read_table(mock_sky.catalog_dir / f"{name}.parquet").to_pandas()
    covered = (brick.invvar > 0).any(axis=0)
    x, y = brick.world_to_pixel(cat.RA.to_numpy(), cat.DEC.to_numpy())
    lrg = (cat.MOCK_POP == "lrg").to_numpy()
    xi, yi = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    assert covered[yi[lrg], xi[lrg]].mean() > 0.95  # (the rest sit in no-coverage stripes)
    far = np.ones_like(covered)
    half = SMALL_SKY.window_pix // 2 + 1
    for a, b in zip(xi[lrg], yi[lrg]):
        far[max(b - half, 0):b + half + 1, max(a - half, 0):a + half + 1] = False
    assert not covered[far].any() and (brick.image[:, far] == 0).all()


def test_bricks_in_a_box_and_the_config_form():
    names = bricks_in_box((150.0, 151.0), (1.9, 2.3))
    assert names == ["1501p020", "1503p020", "1506p020", "1508p020", "1501p022", "1503p022", "1506p022", "1508p022"]
    assert all(150 <= brick_center(b)[0] < 151 for b in names)
    sky = {"source": "mock", "mock": {"bricks": {"ra": [150.0, 151.0], "dec": [1.9, 2.3]}}}
    resolve_mock_bricks(sky)
    assert sky["mock"]["bricks"] == names
    with pytest.raises(ValueError, match="no brick of the grid"):
        resolve_mock_bricks({"mock": {"bricks": {"ra": [150.0, 150.01], "dec": [1.9, 1.95]}}})


@pytest.mark.parametrize("n, faint, tol", [(1.0, True, 0.015), (1.0, False, 0.005), (4.0, False, 0.04)])
def test_mixture_sizes_keep_the_profile(n, faint, tol):
    """The Gaussian mixtures the renderer uses hold each Sersic profile's light at every
    radius to ``tol`` (light per unit r_e) and keep the half-light radius."""
    from scipy.special import gammaincinv
    amps, var = sersic_mog(n, mixture_size(n, faint))
    r = np.linspace(0.05, 4.0, 400)
    bn = gammaincinv(2 * n, 0.5)
    rr = np.linspace(1e-5, 8.0, 400000)
    total = np.trapezoid(np.exp(-bn * (rr ** (1 / n) - 1)) * 2 * np.pi * rr, rr)
    profile = np.exp(-bn * (r ** (1 / n) - 1)) / total
    mog = (amps / (2 * np.pi * var) * np.exp(-0.5 * r[:, None] ** 2 / var)).sum(axis=1)
    assert np.max(np.abs(mog - profile) * 2 * np.pi * r) < tol
    assert abs((amps * (1 - np.exp(-0.5 / var))).sum() - 0.5) < 0.03
