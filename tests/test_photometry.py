import numpy as np

from lensfinder.photometry import (
    depth_mag_to_ivar, flux_to_mag, ivar_to_depth_mag, mag_to_flux, mw_transmission,
)


def test_mag_flux_round_trip_and_zero_point():
    assert flux_to_mag(1.0) == 22.5
    mags = np.array([14.0, 20.0, 25.5])
    np.testing.assert_allclose(flux_to_mag(mag_to_flux(mags)), mags)


def test_nonpositive_flux_has_no_magnitude_unless_floored():
    assert np.isnan(flux_to_mag(np.array([0.0, -1.0]))).all()
    assert np.isfinite(flux_to_mag(np.array([0.0]), floor=1e-7)).all()


def test_depth_formula_matches_design():
    # DESIGN: 5-sigma depth = 22.5 - 2.5 log10(5 / sqrt(PSFDEPTH))
    psfdepth = np.array([100.0, 1234.5])
    expected = 22.5 - 2.5 * np.log10(5 / np.sqrt(psfdepth))
    np.testing.assert_allclose(ivar_to_depth_mag(psfdepth), expected)
    np.testing.assert_allclose(depth_mag_to_ivar(expected), psfdepth)
    assert np.isnan(ivar_to_depth_mag(0.0))


def test_extinction():
    assert mw_transmission(0.0, "g") == 1.0
    assert mw_transmission(0.1, "g") < mw_transmission(0.1, "z") < 1.0
