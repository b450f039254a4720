import numpy as np
import pytest

from lensfinder.sky.bricks import (
    angular_separation_arcsec, brick_center, brick_wcs, brickname_at, coadd_path, sweep_box, sweep_name,
)


def test_brick_names_round_trip():
    assert brick_center("1501p022") == (150.1, 2.2)
    assert brick_center("0001m005") == (0.1, -0.5)
    assert brickname_at(150.1, 2.2) == "1501p022"
    assert brickname_at(0.1, -0.5) == "0001m005"
    with pytest.raises(ValueError, match="not a Legacy Surveys brick name"):
        brick_center("150p02")


def test_coadd_path_follows_dr10_layout(tmp_path):
    p = coadd_path(tmp_path, "1501p022", "invvar", "r")
    assert p == tmp_path / "150" / "1501p022" / "legacysurvey-1501p022-invvar-r.fits.fz"


def test_sweep_names_are_dr10_style():
    assert sweep_name(152.3, 2.0) == "sweep-150p000-155p005.fits"
    assert sweep_name(3.0, -2.0) == "sweep-000m005-005p000.fits"
    assert sweep_box("sweep-000m005-005p000.fits") == (0.0, 5.0, -5.0, 0.0)


def test_brick_wcs_scale_and_orientation():
    w = brick_wcs("1501p020", 1000)
    ra0, dec0 = w.all_pix2world([499.5], [499.5], 0)
    np.testing.assert_allclose([ra0[0], dec0[0]], [150.1, 2.0], atol=1e-9)
    ra1, dec1 = w.all_pix2world([509.5], [499.5], 0)
    assert ra1[0] < ra0[0]  # east is left
    np.testing.assert_allclose(angular_separation_arcsec(ra0, dec0, ra1, dec1), 10 * 0.262, rtol=1e-6)
