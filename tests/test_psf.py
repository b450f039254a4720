import numpy as np
import pytest

from lensfinder import PIXSCALE, psf
from lensfinder.photometry import FWHM_PER_SIGMA

FWHM = np.array([[1.0, 1.3, 1.6], [1.2, 1.2, 1.2]])


def _half_max_width(kernel: np.ndarray, pixscale: float) -> float:
    """FWHM (arcsec) of a kernel's central row, by linear interpolation at half maximum."""
    row = kernel[kernel.shape[0] // 2]
    c = len(row) // 2
    half = row[c] / 2
    right = row[c:]
    i = np.flatnonzero(right < half)[0]
    x = i - 1 + (right[i - 1] - half) / (right[i - 1] - right[i])
    return 2 * x * pixscale


@pytest.mark.parametrize("kind", ["gaussian", "moffat"])
def test_kernels_are_normalised_and_have_the_asked_fwhm(kind):
    k = psf.kernels(kind, FWHM, beta=3.5)
    assert k.shape == (2, 3, psf.KERNEL_SIZE, psf.KERNEL_SIZE)
    np.testing.assert_allclose(k.sum(axis=(2, 3)), 1.0, rtol=1e-12)
    assert (k >= 0).all()
    # on a fine grid (pixel integration negligible) the half-maximum width is the FWHM
    fine = 0.01
    make = psf.gaussian_kernels if kind == "gaussian" else lambda f, size, pixscale: psf.moffat_kernels(f, 3.5, size,
                                                                                                       pixscale)
    for f in (1.0, 1.3, 1.6):
        got = _half_max_width(make(np.array(f), size=401, pixscale=fine), fine)
        assert abs(got / f - 1) < 0.01, (kind, f, got)


def test_gaussian_kernel_variance_is_sigma_squared_plus_the_pixel_term():
    k = psf.gaussian_kernels(FWHM)
    yy, xx = np.mgrid[:psf.KERNEL_SIZE, :psf.KERNEL_SIZE] - psf.KERNEL_SIZE // 2
    sigma_pix = FWHM / FWHM_PER_SIGMA / PIXSCALE
    np.testing.assert_allclose((k * xx**2).sum(axis=(2, 3)), sigma_pix**2 + 1 / 12, rtol=2e-3)


def test_moffat_has_wings_a_gaussian_of_the_same_fwhm_lacks():
    """At equal FWHM, a beta = 3.5 Moffat puts 2% of its light beyond 2 FWHM (in radius);
    a Gaussian puts almost none there."""
    yy, xx = np.mgrid[:psf.KERNEL_SIZE, :psf.KERNEL_SIZE] - psf.KERNEL_SIZE // 2
    outer = np.hypot(xx, yy) * PIXSCALE > 2 * 1.3
    moffat = psf.moffat_kernels(np.array(1.3), 3.5)[outer].sum()
    gauss = psf.gaussian_kernels(np.array(1.3))[outer].sum()
    assert moffat > 0.015 and gauss < 1e-4, (moffat, gauss)


@pytest.mark.parametrize("beta", [2.5, 3.5, 4.765])
def test_moffat_mixture_of_gaussians_matches_the_profile(beta):
    amps, var = psf.moffat_mixture(beta)
    assert amps.sum() == pytest.approx(1.0, abs=0.015) and (amps > 0).all()
    r = np.linspace(0, 10, 2000)
    exact = (beta - 1) / np.pi * (1 + r**2) ** (-beta)
    mix = (amps / (2 * np.pi * var) * np.exp(-0.5 * r[:, None] ** 2 / var)).sum(axis=1)
    assert np.abs(mix - exact).max() < 0.004 * exact[0]


def test_pixel_kernel_keeps_the_centre_and_normalises():
    for shape in ((63, 63), (21, 21), (64, 64), (40, 50)):
        img = np.zeros(shape)
        img[shape[0] // 2, shape[1] // 2] = 5.0
        img[shape[0] // 2, shape[1] // 2 + 2] = 3.0  # a wing two pixels right of the centre
        k = psf.pixel_kernel(img, "test")
        c = psf.KERNEL_SIZE // 2
        assert k.shape == (psf.KERNEL_SIZE,) * 2
        assert k[c, c] == pytest.approx(5 / 8) and k[c, c + 2] == pytest.approx(3 / 8)
    big = np.ones((101, 101))
    assert psf.pixel_kernel(big, "big").sum() == pytest.approx(1.0)


@pytest.mark.parametrize("bad, match", [(np.full((5, 5), np.nan), "finite"), (np.zeros((5, 5)), "sums to"),
                                        (np.ones(5), "2-d")])
def test_bad_pixel_psf_names_its_source(bad, match):
    with pytest.raises(ValueError, match=f"psf-of-galaxy-7.*{match}"):
        psf.pixel_kernel(bad, "psf-of-galaxy-7")


def test_convolving_a_point_returns_the_kernel_centred():
    img = np.zeros((2, 3, 64, 64))
    img[:, :, 32, 32] = 1.0
    k = psf.kernels("moffat", FWHM)
    out = psf.convolve(img, k)
    h = psf.KERNEL_SIZE // 2
    np.testing.assert_allclose(out[:, :, 32 - h:32 + h + 1, 32 - h:32 + h + 1], k, atol=1e-12)
    np.testing.assert_allclose(out.sum(axis=(2, 3)), 1.0, rtol=1e-9)


def test_the_interior_of_a_circular_convolution_equals_the_padded_one():
    """convolve_interior (what phase 4c blurs arcs with) equals convolve cropped by the
    kernel's half-width: the circular wrap-around never reaches the interior. Its float32
    transforms err by ~1e-7 of the peak, not more."""
    rng = np.random.default_rng(3)
    img = rng.normal(size=(4, 3, 96, 96))
    k = psf.kernels("moffat", rng.uniform(1.0, 1.6, (4, 3)))
    h = psf.KERNEL_SIZE // 2
    inner = psf.convolve_interior(img, k)
    assert inner.shape == (4, 3, 96 - 2 * h, 96 - 2 * h) and inner.dtype == np.float64
    ref = psf.convolve(img, k)[..., h:-h, h:-h]
    assert np.abs(inner - ref).max() < 2e-6 * np.abs(ref).max()


@pytest.mark.parametrize("n_components", [1, 2, 4])
def test_weighted_components_blur_as_their_weighted_sum(n_components):
    """With weights, convolve_interior blurs each band's weighted sum of the components
    (summed after the transform, over the components that carry light)."""
    rng = np.random.default_rng(n_components)
    comp = rng.uniform(size=(5, n_components, 96, 96))
    w = rng.uniform(size=(5, 3, n_components))
    k = psf.kernels("moffat", rng.uniform(1.0, 1.6, (5, 3)))
    h = psf.KERNEL_SIZE // 2
    ref = psf.convolve(np.einsum("nbc,nchw->nbhw", w, comp), k)[..., h:-h, h:-h]
    out = psf.convolve_interior(comp, k, w)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 2e-6 * np.abs(ref).max()


def test_moffat_kernels_of_repeated_sizes_are_those_of_each_size():
    fwhm = np.array([[1.3, 1.2, 1.3], [1.1, 1.3, 1.2]])
    one_by_one = np.stack([np.stack([psf.moffat_kernels(np.array(f), 3.5) for f in row]) for row in fwhm])
    np.testing.assert_array_equal(psf.moffat_kernels(fwhm, 3.5), one_by_one)
    many = np.random.default_rng(0).uniform(1.0, 1.6, (200, 3))  # more than one chunk, all distinct
    np.testing.assert_array_equal(psf.moffat_kernels(many, 3.5)[150], np.stack([psf.moffat_kernels(f, 3.5) for f in many[150]]))


def test_config_rejects_unknown_kind_and_infinite_flux_beta():
    with pytest.raises(ValueError, match="kind"):
        psf.PsfConfig.from_dict({"kind": "airy"})
    with pytest.raises(ValueError, match="beta"):
        psf.PsfConfig.from_dict({"moffat_beta": 1.0})
