import hashlib

import numpy as np
import pyarrow.parquet as pq
from astropy.io import fits

from lensfinder.photometry import ivar_to_depth_mag
from lensfinder.select import lrg_criteria
from lensfinder.sky.bricks import coadd_path
from lensfinder.sky.columns import MOCK_POPULATION_COLUMN, SWEEP_COLUMNS, fits_format
from lensfinder.sky.coadds import CoaddBrick
from lensfinder import psf
from lensfinder.noise import DR10_LAG1
from lensfinder.psf import PsfConfig
from lensfinder.sky.mock import MockSkyConfig, _render_band, make_brick_catalog, psf_mixture, sersic_mog, write_brick

from conftest import SMALL_SKY


def _digest(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_bricks(tmp_path, mock_sky):
    brick = SMALL_SKY.bricks[0]
    write_brick(SMALL_SKY, brick, tmp_path / "coadd", tmp_path / "cat.parquet")
    a = _digest([coadd_path(mock_sky.coadd_dir, brick, k, b) for k in ("image", "invvar") for b in "grz"])
    b = _digest([coadd_path(tmp_path / "coadd", brick, k, b) for k in ("image", "invvar") for b in "grz"])
    assert a == b
    assert _digest([tmp_path / "cat.parquet"]) == _digest([mock_sky.catalog_dir / f"{brick}.parquet"])


def test_other_seed_differs(tmp_path):
    cfg = MockSkyConfig(**{**SMALL_SKY.__dict__, "seed": 12})
    write_brick(cfg, cfg.bricks[0], tmp_path / "coadd", tmp_path / "cat.parquet")
    other = pq.read_table(tmp_path / "cat.parquet")
    assert other.num_rows > 0 and not np.array_equal(other["RA"].to_numpy(), np.zeros(other.num_rows))


def test_sersic_mixture_reproduces_half_light_radius():
    for n in (1.0, 4.0):
        amps, var = sersic_mog(n)
        assert np.isclose(amps.sum(), 1.0)
        # Enclosed light of a circular 2-d Gaussian mixture at r = 1 (the half-light radius)
        enclosed = (amps * (1 - np.exp(-0.5 / var))).sum()
        assert abs(enclosed - 0.5) < 0.03, (n, enclosed)


def test_sweep_columns_have_dr10_names_dtypes_and_units(mock_sky):
    with fits.open(mock_sky.sweeps[0]) as hdul:
        cols = hdul[1].columns
        assert cols.names == list(SWEEP_COLUMNS) + [MOCK_POPULATION_COLUMN]  # then the mock's truth column
        for c in cols[:-1]:
            dtype, unit = SWEEP_COLUMNS[c.name]
            assert c.format == fits_format(dtype), c.name
            assert (c.unit or "") == unit, c.name


def test_conditions_are_dr10_decals_like(mock_sky):
    for cond in mock_sky.conditions.values():
        for band, depth in zip("grz", (24.5, 23.9, 23.0)):
            assert 1.0 <= cond[band]["psf_fwhm"] <= 1.6
            assert abs(ivar_to_depth_mag(cond[band]["psfdepth"]) - depth) < 0.8


def test_catalogue_fluxes_match_images_for_isolated_stars(mock_sky):
    checked = 0
    for name in SMALL_SKY.bricks:
        cat = pq.read_table(mock_sky.catalog_dir / f"{name}.parquet").to_pandas()
        brick = CoaddBrick(mock_sky.coadd_dir, name)
        x, y = brick.world_to_pixel(cat.RA.to_numpy(), cat.DEC.to_numpy())
        d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
        np.fill_diagonal(d, np.inf)
        stars = np.flatnonzero((cat.TYPE == "PSF").to_numpy() & (d.min(axis=1) > 30) & (cat.FLUX_R > 2).to_numpy())
        cut = brick.cutouts(cat.RA.to_numpy()[stars], cat.DEC.to_numpy()[stars], size=31)
        for i, s in enumerate(stars):
            for j, b in enumerate("GRZ"):
                if cut.flags[i] or cat[f"NOBS_{b}"].iloc[s] == 0 or not (cut.invvar[i, j] > 0).all():
                    continue  # pixels are rendered only in windows around LRG-like galaxies
                aperture = float(np.nansum(cut.image[i, j]))
                sigma = np.sqrt(1 / cat[f"FLUX_IVAR_{b}"].iloc[s] + (1 / cut.invvar[i, j]).sum())
                assert abs(aperture - cat[f"FLUX_{b}"].iloc[s]) < 5 * sigma + 0.01 * aperture, (name, s, b)
                checked += 1
    assert checked >= 6  # the counts put ~2-4 isolated stars brighter than r ~ 22 on each small brick


def test_populations_pass_lrg_cuts_at_realistic_rates(mock_sky):
    cat = pq.read_table([mock_sky.catalog_dir / f"{b}.parquet" for b in SMALL_SKY.bricks])
    cols = {c: cat[c].to_numpy(zero_copy_only=False) for c in cat.column_names}
    crit = lrg_criteria(cols)
    selected = np.logical_and.reduce(list(crit.values()))
    pop = cols["MOCK_POP"]
    # desitarget's model is of DR7.1-era LRG targets: ~1/3 fail the final (DR9) sliding
    # cut, and pathologies, masks and the bright star take a few more
    assert 0.45 < selected[pop == "lrg"].mean() < 0.8
    assert not selected[pop != "lrg"].any()
    # every criterion has something to cut
    assert all((~ok).any() for ok in crit.values())


def test_noise_has_the_pixel_correlation_of_resampled_coadds(mock_sky):
    """image - noiseless model, in units of the invvar sigma: unit variance (the noise is
    what invvar says) and lag-1
    correlation ~0.11 (the configured DR10 value), over pairs of covered pixels."""
    name = SMALL_SKY.bricks[0]
    brick = CoaddBrick(mock_sky.coadd_dir, name)
    _, render = make_brick_catalog(SMALL_SKY, name)
    for j, b in enumerate("grz"):
        ok = brick.invvar[j] > 0
        chi = np.where(ok, (brick.image[j] - _render_band(ok.shape, render, b)) * np.sqrt(brick.invvar[j]), 0)
        pairs_x, pairs_y = ok[:, 1:] & ok[:, :-1], ok[1:, :] & ok[:-1, :]
        lag1 = ((chi[:, 1:] * chi[:, :-1])[pairs_x].sum() + (chi[1:, :] * chi[:-1, :])[pairs_y].sum()) \
            / (pairs_x.sum() + pairs_y.sum()) / (chi[ok] ** 2).mean()
        assert abs(lag1 - DR10_LAG1) < 0.02, (b, lag1)
        assert 0.95 < (chi[ok] ** 2).mean() < 1.05


def test_mock_psf_is_the_injection_psf_family():
    """The mock renders stars and galaxies with a Gaussian mixture of the same Moffat the
    arcs are blurred with: sampled at pixel centres it matches the pixel-integrated kernel
    to 3% of the peak (pixel integration is most of the difference)."""
    fwhm = 1.3
    amps, var = psf_mixture(PsfConfig(), fwhm)
    k = psf.KERNEL_SIZE
    yy, xx = np.mgrid[:k, :k] - k // 2
    mix = (amps[:, None, None] / (2 * np.pi * var[:, None, None]) * np.exp(-0.5 * (xx**2 + yy**2) / var[:, None, None])).sum(0)
    mix /= mix.sum()
    ref = psf.moffat_kernels(np.array(fwhm), 3.5)
    assert np.abs(mix - ref).max() < 0.03 * ref.max()
    gauss = psf.gaussian_kernels(np.array(fwhm))
    assert np.abs(gauss - ref).max() > 0.1 * ref.max()  # the test can tell the families apart
