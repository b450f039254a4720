import numpy as np
import pyarrow as pa
import pytest

from lensfinder.detectability import Criteria, arc_snr, clear_of_lens, failures, geometry_ok, recognisable, resolved, solve_images
from lensfinder.inject import ZEROPOINT_ELECTRONS, InjectConfig, arc_noise, electrons_per_nanomaggy
from lensfinder.lensing import LensSystems
from lensfinder.noise import DR10_LAG1, autocorrelation, correlate, lag1_correlation, sum_variance
from lensfinder.sky.shapes import ellipticity


def _systems(n, seed):
    rng = np.random.default_rng(seed)
    te = rng.uniform(0.8, 3.0, n)
    e1, e2 = ellipticity(rng.uniform(0.5, 1.0, n), rng.uniform(0, np.pi, n))
    g, ga = rng.uniform(0, 0.1, n), rng.uniform(0, np.pi, n)
    r, a = np.sqrt(rng.uniform(0, 1, n)) * te * 1.2, rng.uniform(0, 2 * np.pi, n)
    lx, ly = rng.uniform(-0.13, 0.13, n), rng.uniform(-0.13, 0.13, n)
    return LensSystems(theta_e=te, lens_e1=e1, lens_e2=e2, lens_x=lx, lens_y=ly, gamma1=g * np.cos(2 * ga),
                       gamma2=g * np.sin(2 * ga), src_x=lx + r * np.cos(a), src_y=ly + r * np.sin(a),
                       src_re=np.full(n, 0.3), src_n=np.ones(n), src_e1=np.zeros(n), src_e2=np.zeros(n))


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_images_and_magnifications_match_lenstronomy_on_random_systems():
    """Every image lenstronomy's solver finds (brighter than |mu| = 1e-3; fainter ones, deep
    in the singular SIE centre, matter to no criterion) is found here at the same place;
    every image found here maps onto the source under lenstronomy's own ray shooting, and
    its magnification is lenstronomy's at that position. (lenstronomy's grid search can
    miss a faint image near the centre that is really there; the second check covers it.)"""
    pytest.importorskip("lenstronomy")
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver
    n = 30
    s = _systems(n, seed=7)
    s.src_x[:8], s.src_y[:8] = s.lens_x[:8] + 0.04 * s.theta_e[:8], s.lens_y[:8] + 0.03 * s.theta_e[:8]  # quads
    ours = solve_images(s)
    model = LensModel(["SIE", "SHEAR"])
    solver = LensEquationSolver(model)
    counts = []
    for i in range(n):
        kw = [dict(theta_E=s.theta_e[i], e1=s.lens_e1[i], e2=s.lens_e2[i], center_x=s.lens_x[i], center_y=s.lens_y[i]),
              dict(gamma1=s.gamma1[i], gamma2=s.gamma2[i], ra_0=0, dec_0=0)]
        x, y = solver.image_position_from_source(s.src_x[i], s.src_y[i], kw, min_distance=0.01,
                                                 search_window=8 * s.theta_e[i], precision_limit=1e-10,
                                                 num_iter_max=100)
        x, y = x[np.abs(model.magnification(x, y, kw)) > 1e-3], y[np.abs(model.magnification(x, y, kw)) > 1e-3]
        gx, gy, gmu = ours[i]
        for u, v in zip(x, y):
            assert np.hypot(gx - u, gy - v).min() < 1e-4, (i, u, v, gx, gy)
        bx, by = model.ray_shooting(gx, gy, kw)
        np.testing.assert_allclose(np.hypot(bx - s.src_x[i], by - s.src_y[i]), 0, atol=1e-6)
        np.testing.assert_allclose(gmu, model.magnification(gx, gy, kw), rtol=1e-3)
        counts.append(int((np.abs(gmu) > 1e-3).sum()))
    assert {1, 2, 4} <= set(counts), counts  # singly imaged, doubles and quads were all tested


def test_sis_images_are_the_textbook_ones():
    """SIS, source at beta < theta_E: images at beta +- theta_E, mu = 1 +- theta_E / beta."""
    s = _systems(1, seed=1)
    s.lens_e1[:] = s.lens_e2[:] = s.gamma1[:] = s.gamma2[:] = s.lens_x[:] = s.lens_y[:] = 0.0
    s.theta_e[:], s.src_x[:], s.src_y[:] = 1.5, 0.5, 0.0
    x, y, mu = solve_images(s)[0]
    order = np.argsort(x)
    np.testing.assert_allclose(x[order], [0.5 - 1.5, 0.5 + 1.5], atol=1e-3)  # q capped at 1 - 1e-4
    np.testing.assert_allclose(y, 0.0, atol=1e-6)
    np.testing.assert_allclose(mu[order], [1 - 1.5 / 0.5, 1 + 1.5 / 0.5], rtol=1e-3)


def test_arc_snr_counts_only_the_arcs_own_pixels():
    arcs = np.zeros((1, 3, 8, 8))
    arcs[0, 1, 2, 2:6] = 10.0  # four r-band pixels at 10 sigma
    arcs[0, 1, 5, 5] = 0.5     # below 1 sigma: not part of the arc
    invvar = np.ones((1, 3, 8, 8))
    snr = arc_snr(arcs, invvar, np.full((1, 3), np.inf))
    assert snr[0] == pytest.approx(40 / 2)  # sum 40 over sqrt(4 pixels x variance 1)
    with_photons = arc_snr(arcs, invvar, np.full((1, 3), 1.0))  # variance 1 + arc
    assert with_photons[0] == pytest.approx(40 / np.sqrt(4 * 11))
    # correlated pixel noise (resampled coadds): the 4 adjacent pixels' sum has variance
    # 4 + 2 x 3 neighbour pairs x 0.11 + 2 x 2 lag-2 pairs x rho_2
    rho2 = autocorrelation(0.11)[2, 0]
    assert arc_snr(arcs, invvar, np.full((1, 3), np.inf), 0.11)[0] == pytest.approx(40 / np.sqrt(4 + 0.66 + 4 * rho2))
    invvar[0, 1, 2, 2] = 0  # no data there
    assert arc_snr(arcs, invvar, np.full((1, 3), np.inf))[0] == pytest.approx(30 / np.sqrt(3))


def test_criteria_are_collett_2015_by_default():
    c = Criteria()
    assert (c.min_images, c.min_magnification, c.min_arc_snr, c.resolved) == (2, 3.0, 20.0, True)
    assert resolved(1.0, 0.5, 1.2).item() and not resolved(0.7, 0.4, 1.3).item()  # 0.49 < 0.16 + 0.4225
    ok = recognisable([2, 1, 4, 2, 2], [5, 5, 2.9, 5, 5], [25, 25, 25, 19, 25], [True, True, True, True, False], c)
    assert ok.tolist() == [True, False, False, False, False]
    assert c.min_theta_e_fwhm == 0 and clear_of_lens([0.1, 3.0], [1.3, 1.3], c).all()  # the cut is off


def test_clear_of_lens_asks_theta_e_of_at_least_k_fwhm_and_is_counted_on_its_own():
    c = Criteria(min_theta_e_fwhm=1.0)
    theta_e, fwhm, src_re = np.array([1.2, 1.3, 1.5, 0.6]), np.array([1.3, 1.3, 1.0, 1.0]), np.full(4, 0.2)
    clear = clear_of_lens(theta_e, fwhm, c)
    assert clear.tolist() == [False, True, True, False]
    # the last is resolved by Collett's criterion (0.36 > 0.04 + 0.25) yet not clear of the lens
    assert resolved(theta_e, src_re, fwhm).all()
    assert geometry_ok(theta_e, src_re, fwhm, c).tolist() == [False, True, True, False]
    assert geometry_ok(theta_e, src_re, fwhm, Criteria(resolved=False, min_theta_e_fwhm=1.0)).tolist() == clear.tolist()
    n = np.full(4, 2)
    fails = failures(n, np.full(4, 5.0), np.full(4, 30.0), resolved(theta_e, src_re, fwhm), c, clear)
    assert fails["clear_of_lens"].tolist() == [True, False, False, True] and not fails["magnification"].any()
    assert recognisable(n, np.full(4, 5.0), np.full(4, 30.0), np.ones(4, bool), c, clear).tolist() == clear.tolist()


def test_gain_is_in_electrons_and_the_arc_noise_has_that_variance():
    """Zero points are DECam's in electrons (legacyzpts), not ADU: r band, NOBS 3, 90 s ->
    3 x 90 x 10^(0.4 (26.818 - 22.5)) = 14,404 e- per nanomaggy; the arc's noise variance is
    arc / that, correlated between pixels like the coadd's noise."""
    assert ZEROPOINT_ELECTRONS == {"g": 26.610, "r": 26.818, "z": 26.484}
    n = 4
    rows = pa.table({**{f"nobs_{b}": np.full(n, 3, np.int16) for b in "grz"},
                     "seed": np.arange(n, dtype=np.int64)})
    cfg = InjectConfig()
    gain = electrons_per_nanomaggy(rows, cfg)
    assert gain[0, 1] == pytest.approx(3 * 90 * 10 ** (0.4 * (26.818 - 22.5)))
    arcs = np.full((n, 3, 64, 64), 2.0)
    noise = arc_noise(arcs, rows, cfg)
    np.testing.assert_allclose(noise.var(axis=(0, 2, 3)), 2.0 / gain[0], rtol=0.03)
    # and it has the coadds' pixel correlation (lensfinder.noise)
    assert abs(lag1_correlation(noise / np.sqrt(2.0 / gain[0])[None, :, None, None]) - DR10_LAG1) < 0.02


def test_variance_of_a_sum_is_the_sum_over_pixel_pairs_of_the_autocorrelation():
    """sum_variance's two 1-d passes equal the 2-d sum over pixel pairs sigma_i sigma_j rho(i - j)."""
    from scipy.ndimage import correlate as correlate_2d
    sigma = np.random.default_rng(1).uniform(0, 2, (3, 2, 20, 20)) * (np.random.default_rng(2).uniform(size=(20, 20)) > 0.5)
    pairs = (sigma * correlate_2d(sigma, autocorrelation(DR10_LAG1)[None, None])).sum(axis=(-2, -1))
    np.testing.assert_allclose(sum_variance(sigma, DR10_LAG1), pairs, rtol=1e-12)


def test_variance_of_a_sum_of_correlated_pixels_matches_monte_carlo():
    rng = np.random.default_rng(0)
    draws = correlate(rng.normal(size=(20000, 12, 12)), DR10_LAG1)
    mask = np.zeros((12, 12))
    mask[3:8, 4:9] = 1.0
    predicted = sum_variance(mask[None], DR10_LAG1)[0]
    assert (draws * mask).sum(axis=(1, 2)).var() == pytest.approx(predicted, rel=0.03)
    assert predicted > 1.3 * mask.sum()  # white noise would say 25: S/N overstated by ~18%
