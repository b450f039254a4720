import numpy as np
from astropy.coordinates import SkyCoord
import pytest

from lensfinder.sky.bricks import (
    brick_center, brick_wcs, brickname_at, coadd_path, sweep_box, sweep_name,
)


def test_brick_grid_is_the_legacy_surveys_one():
    assert brick_center("1503p022") == (150.375, 2.25)  # survey-bricks.fits
    assert brickname_at(150.3, 2.2) == "1503p022"
    with pytest.raises(ValueError, match="not a Legacy Surveys brick name"):
        brick_center("150p02")
    with pytest.raises(ValueError, match="'1502p020' is not a brick of the Legacy Surveys grid"):
        brick_center("1502p020")  # the old name/10 convention: no such brick


def test_brick_grid_matches_desiutil_everywhere_on_the_sky():
    from desiutil.brick import Bricks

    grid = Bricks(0.25)
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, 5000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    names = grid.brickname(ra, dec)
    assert [brickname_at(r, d) for r, d in zip(ra, dec)] == list(names)
    centres = np.array([brick_center(n) for n in names])
    np.testing.assert_array_equal(centres, np.stack(grid.brick_radec(ra, dec), axis=1))


def test_coadd_path_follows_dr10_layout(tmp_path):
    p = coadd_path(tmp_path, "1503p022", "invvar", "r")
    assert p == tmp_path / "150" / "1503p022" / "legacysurvey-1503p022-invvar-r.fits.fz"


def test_sweep_names_are_dr10_style():
    assert sweep_name(152.3, 2.0) == "sweep-150p000-155p005.fits"
    assert sweep_name(3.0, -2.0) == "sweep-000m005-005p000.fits"
    assert sweep_box("sweep-000m005-005p000.fits") == (0.0, 5.0, -5.0, 0.0)


def test_brick_wcs_scale_and_orientation():
    w = brick_wcs("1501p020", 1000)
    ra0, dec0 = w.all_pix2world([499.5], [499.5], 0)
    np.testing.assert_allclose([ra0[0], dec0[0]], [150.125, 2.0], atol=1e-9)
    ra1, dec1 = w.all_pix2world([509.5], [499.5], 0)
    assert ra1[0] < ra0[0]  # east is left
    sep = SkyCoord(ra0, dec0, unit="deg").separation(SkyCoord(ra1, dec1, unit="deg")).arcsec
    np.testing.assert_allclose(sep, 10 * 0.262, rtol=1e-6)
