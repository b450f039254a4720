import numpy as np
import pytest

from lensfinder import PIXSCALE
from lensfinder import psf
from lensfinder.lensing import Knots, LensSystems, deflection, lensed_images, sersic_bn, source_components
from lensfinder.sky.shapes import E_MAX_LENSING, axis_ratio_angle, ellipticity, stamp_angle


def random_systems(n: int, seed: int = 0) -> LensSystems:
    rng = np.random.default_rng(seed)
    theta_e = rng.uniform(0.8, 3.0, n)
    theta_e[: n // 5] = rng.uniform(6.5, 7.8, n // 5)  # arcs reaching the stamp edge (8.4")
    q_lens = rng.uniform(0.5, 1.0, n)
    q_lens[n // 5: 2 * n // 5] = 1.0 - rng.uniform(0, 1e-3, n // 5)  # nearly round lenses
    q_src = rng.uniform(0.4, 1.0, n)
    q_src[2 * n // 5: 3 * n // 5] = 1.0  # exactly round sources
    le1, le2 = ellipticity(q_lens, rng.uniform(0, np.pi, n))
    se1, se2 = ellipticity(q_src, rng.uniform(0, np.pi, n))
    r_src = np.sqrt(rng.uniform(0, 1, n)) * theta_e * 0.8
    a_src = rng.uniform(0, 2 * np.pi, n)
    return LensSystems(
        theta_e=theta_e, lens_e1=le1, lens_e2=le2, lens_x=rng.uniform(-0.13, 0.13, n),
        lens_y=rng.uniform(-0.13, 0.13, n), gamma1=rng.uniform(-0.08, 0.08, n), gamma2=rng.uniform(-0.08, 0.08, n),
        src_x=r_src * np.cos(a_src), src_y=r_src * np.sin(a_src), src_re=rng.uniform(0.1, 0.6, n),
        src_n=rng.uniform(0.5, 4.0, n), src_e1=se1, src_e2=se2,
    )


@pytest.fixture(scope="module")
def lenstronomy_image():
    pytest.importorskip("lenstronomy")
    from lenstronomy.Data.pixel_grid import PixelGrid
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    light = LightModel(["SERSIC_ELLIPSE"])

    def image_model(size, kernel):
        grid = PixelGrid(nx=size, ny=size, ra_at_xy_0=-(size // 2) * PIXSCALE, dec_at_xy_0=-(size // 2) * PIXSCALE,
                         transform_pix2angle=np.eye(2) * PIXSCALE)
        point_spread = PSF("NONE") if kernel is None else PSF("PIXEL", kernel_point_source=kernel)
        return ImageModel(grid, point_spread, lens_model_class=LensModel(["SIE", "SHEAR"]),
                          source_model_class=light, kwargs_numerics={"supersampling_factor": 8})

    def render(s: LensSystems, i: int, size: int = 64, kernel=None) -> np.ndarray:
        n = s.src_n[i]
        # Same physical profile: lenstronomy uses b_n ~ 1.9992 n - 0.3271, we use the exact
        # b_n, so its R_sersic is rescaled to give an identical I(R).
        r_len = s.src_re[i] * ((1.9992 * n - 0.3271) / sersic_bn(n)) ** n
        src = [dict(amp=1.0, R_sersic=r_len, n_sersic=n, e1=s.src_e1[i], e2=s.src_e2[i],
                    center_x=s.src_x[i], center_y=s.src_y[i])]
        src[0]["amp"] = 1.0 / light.total_flux(src)[0]  # unit total source flux
        lens = [dict(theta_E=s.theta_e[i], e1=s.lens_e1[i], e2=s.lens_e2[i], center_x=s.lens_x[i],
                     center_y=s.lens_y[i]), dict(gamma1=s.gamma1[i], gamma2=s.gamma2[i], ra_0=0, dec_0=0)]
        return image_model(size, kernel).image(kwargs_lens=lens, kwargs_source=src)

    return render


def _worst(ours, systems, render):
    worst_pix, worst_flux = 0.0, 0.0
    for i in range(len(systems)):
        ref = render(systems, i)
        worst_pix = max(worst_pix, np.abs(ours[i] - ref).max() / ref.max())
        worst_flux = max(worst_flux, abs(ours[i].sum() / ref.sum() - 1))
    return worst_pix, worst_flux


def test_same_numerics_match_lenstronomy_on_60_random_systems(lenstronomy_image):
    """Full 8x supersampling on both sides: the physics and conventions are identical."""
    systems = random_systems(60)
    ours = lensed_images(systems, supersample=8, refine_threshold=0.0, cusp_spread=np.inf)
    worst_pix, worst_flux = _worst(ours, systems, lenstronomy_image)
    assert worst_pix < 0.01, worst_pix
    assert worst_flux < 0.005, worst_flux


@pytest.mark.parametrize("kind", ["moffat", "pixel"])
def test_psf_and_padded_rendering_match_lenstronomy(lenstronomy_image, kind):
    """The injection's path -- trace on a grid padded by the kernel half-width, blur, crop --
    against lenstronomy rendering the same systems on the padded grid with a ``PIXEL`` PSF of
    the same kernel, then cropped: light from just outside the stamp is blurred in. A fifth
    of the systems have arcs reaching the stamp edge. ``pixel``: an asymmetric survey-like
    kernel (an elongated Moffat plus an offset wing)."""
    systems = random_systems(15, seed=4)
    k = psf.KERNEL_SIZE
    kernel = psf.moffat_kernels(np.array(1.3), 3.5)
    if kind == "pixel":
        yy, xx = np.mgrid[:k, :k] - k // 2
        raw = (1 + (xx**2 / 1.2 + yy**2 * 1.2) / 5.0) ** -3.0 + 0.01 * np.exp(-((xx - 3) ** 2 + yy**2) / 20)
        kernel = psf.pixel_kernel(raw, "test kernel")
    pad = k // 2
    size = 64 + 2 * pad
    unit = lensed_images(systems, size, supersample=8, refine_threshold=0.0, cusp_spread=np.inf)
    ours = psf.convolve(unit[:, None], np.broadcast_to(kernel, (15, 1, k, k)))[:, 0, pad:-pad, pad:-pad]
    worst_pix, worst_flux = 0.0, 0.0
    for i in range(15):
        ref = lenstronomy_image(systems, i, size, kernel)[pad:-pad, pad:-pad]
        worst_pix = max(worst_pix, np.abs(ours[i] - ref).max() / ref.max())
        worst_flux = max(worst_flux, abs(ours[i].sum() / ref.sum() - 1))
    assert worst_pix < 0.01, worst_pix
    assert worst_flux < 0.005, worst_flux


def test_clumpy_sources_match_lenstronomy():
    """Sersic source plus star-forming knots (round Gaussians) at production numerics
    against lenstronomy's sum of light profiles on a 16x grid (fine enough for the knots)."""
    pytest.importorskip("lenstronomy")
    from lenstronomy.Data.pixel_grid import PixelGrid
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    n, k = 8, 3
    s = random_systems(5 * n, seed=7).take(slice(n, 2 * n))  # no edge arcs: plain stamps
    rng = np.random.default_rng(3)
    s.src_n = rng.uniform(0.5, 2.5, n)  # the priors' range: n ~ 3-4 cusps need > 16x in lenstronomy
    knots = Knots(x=s.src_x[:, None] + rng.uniform(-0.3, 0.3, (n, k)), y=s.src_y[:, None] + rng.uniform(-0.3, 0.3, (n, k)),
                  flux=rng.uniform(0.05, 0.15, (n, k)), re=rng.uniform(0.03, 0.1, n))
    knots.flux[0, 1:] = 0.0  # a source with one knot
    weights = np.concatenate([1 - knots.flux.sum(axis=1, keepdims=True), knots.flux], axis=1)  # unit total flux
    ours = np.einsum("nc,nchw->nhw", weights, source_components(s, knots))
    light = LightModel(["SERSIC_ELLIPSE"] * (1 + k))
    grid = PixelGrid(nx=64, ny=64, ra_at_xy_0=-32 * PIXSCALE, dec_at_xy_0=-32 * PIXSCALE,
                     transform_pix2angle=np.eye(2) * PIXSCALE)
    model = ImageModel(grid, PSF("NONE"), lens_model_class=LensModel(["SIE", "SHEAR"]), source_model_class=light,
                       kwargs_numerics={"supersampling_factor": 16})

    def sersic(re, nn, e1, e2, x, y, flux):  # lenstronomy's approximate b_n, rescaled to the exact profile
        return dict(amp=flux, R_sersic=re * ((1.9992 * nn - 0.3271) / sersic_bn(nn)) ** nn, n_sersic=nn, e1=e1, e2=e2,
                    center_x=x, center_y=y)

    worst_pix, worst_flux = 0.0, 0.0
    for i in range(n):
        src = [sersic(s.src_re[i], s.src_n[i], s.src_e1[i], s.src_e2[i], s.src_x[i], s.src_y[i], 1.0)]
        src += [sersic(knots.re[i], 0.5, 0.0, 0.0, knots.x[i, j], knots.y[i, j], 1.0) for j in range(k)]
        unit_flux = light.total_flux(src)
        shares = [1 - knots.flux[i].sum(), *knots.flux[i]]
        for c, f, share in zip(src, unit_flux, shares):
            c["amp"] = share / f
        lens = [dict(theta_E=s.theta_e[i], e1=s.lens_e1[i], e2=s.lens_e2[i], center_x=s.lens_x[i], center_y=s.lens_y[i]),
                dict(gamma1=s.gamma1[i], gamma2=s.gamma2[i], ra_0=0, dec_0=0)]
        ref = model.image(kwargs_lens=lens, kwargs_source=src)
        worst_pix = max(worst_pix, np.abs(ours[i] - ref).max() / ref.max())
        worst_flux = max(worst_flux, abs(ours[i].sum() / ref.sum() - 1))
    assert worst_pix < 0.01, worst_pix
    assert worst_flux < 0.005, worst_flux


def test_light_from_outside_the_stamp_is_blurred_in():
    """A source whose arc lies just beyond the stamp edge: padded rendering puts some of its
    light on the stamp; rendering only the stamp's own pixels would miss it."""
    s = random_systems(1, seed=6)
    s.theta_e[:], s.lens_e1[:], s.lens_e2[:], s.gamma1[:], s.gamma2[:] = 1.0, 0.0, 0.0, 0.0, 0.0
    s.lens_x[:] = s.lens_y[:] = 0.0
    # beta > theta_E: one image, at beta + theta_E = 8.9", beyond the stamp's 8.38" half-width
    s.src_x[:], s.src_y[:], s.src_re[:], s.src_n[:] = 7.9, 0.0, 0.2, 1.0
    kernel = psf.moffat_kernels(np.array([[1.3]]), 3.5)
    pad = psf.KERNEL_SIZE // 2
    padded = psf.convolve(lensed_images(s, 64 + 2 * pad)[:, None], kernel)[:, 0, pad:-pad, pad:-pad]
    bare = psf.convolve(lensed_images(s, 64)[:, None], kernel)[:, 0]
    total = lensed_images(s, 64 + 2 * pad).sum()
    assert padded[0].sum() > 0.03 * total  # the PSF wing of the image lands on the stamp
    assert bare[0].sum() < 0.3 * padded[0].sum()


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
@pytest.mark.parametrize("re_range, n_range", [
    ((0.1, 0.6), (0.5, 2.5)),     # the realistic priors' Sersic sources
    ((0.05, 0.2), (0.5, 4.0)),    # compact and cuspy ones (benchmarks/source_variety.py)
    ((0.06, 0.1), (0.5, 0.5)),    # star-forming knots (round Gaussians) ...
    ((0.03, 0.06), (0.5, 0.5)),   # ... down to 1/9 of a pixel
])
def test_production_sampling_is_converged(re_range, n_range):
    """Default adaptive sampling against a full 32x32 sub-pixel grid in every pixel, for
    sources from the priors' ranges (round for the knots). (lenstronomy's own full 8x grid
    is *less* converged than this -- up to ~4% of the peak on compact sources -- so the
    reference is a brute-force grid of the same, lenstronomy-verified, physics.) Sources
    smaller than a sub-pixel, and images squeezed near the lens centre, were missed by the
    refinement before its source-plane footprint criterion (a 0.04" knot lost 12% of its
    flux); ``refine_threshold=-1`` makes the reference refine every pixel, even those whose
    centre sample underflows to 0."""
    rng = np.random.default_rng(5)
    systems = random_systems(30, seed=1)
    systems.src_n[:] = rng.uniform(*n_range, 30)
    systems.src_re[:] = rng.uniform(*re_range, 30)
    if n_range == (0.5, 0.5):
        systems.src_e1[:] = systems.src_e2[:] = 0.0
    ref = lensed_images(systems, supersample=32, refine_threshold=-1.0, cusp_spread=np.inf, batch=1)
    ours = lensed_images(systems)
    assert (np.abs(ours - ref).max(axis=(1, 2)) / ref.max(axis=(1, 2))).max() < 0.01
    assert np.abs(ours.sum(axis=(1, 2)) / ref.sum(axis=(1, 2)) - 1).max() < 0.005


@pytest.mark.slow  # ~3 s on 2 cores
def test_squeezed_images_near_the_lens_centre_are_rendered():
    """A compact source just inside an SIS's cut has its second image squeezed against the
    lens centre, smaller than a sub-pixel: the refinement must find it (it lost 5% of the
    peak before the source-plane footprint criterion)."""
    n = 12
    rng = np.random.default_rng(2)
    ang, beta = rng.uniform(0, 2 * np.pi, n), rng.uniform(1.38, 1.49, n)
    lx, ly = rng.uniform(-0.13, 0.13, n), rng.uniform(-0.13, 0.13, n)
    zero = np.zeros(n)
    s = LensSystems(theta_e=np.full(n, 1.5), lens_e1=zero, lens_e2=zero, lens_x=lx, lens_y=ly, gamma1=zero,
                    gamma2=zero, src_x=lx + beta * np.cos(ang), src_y=ly + beta * np.sin(ang),
                    src_re=rng.uniform(0.03, 0.06, n), src_n=np.full(n, 0.5), src_e1=zero, src_e2=zero)
    ref = lensed_images(s, supersample=32, refine_threshold=-1.0, cusp_spread=np.inf, batch=1)
    ours = lensed_images(s)
    assert (np.abs(ours - ref).max(axis=(1, 2)) / ref.max(axis=(1, 2))).max() < 0.01
    assert np.abs(ours.sum(axis=(1, 2)) / ref.sum(axis=(1, 2)) - 1).max() < 0.005


def test_unlensed_limit_conserves_flux():
    s = random_systems(5, seed=2)
    s.theta_e[:] = 1e-9
    s.gamma1[:] = s.gamma2[:] = 0
    s.src_x[:] = s.src_y[:] = 0
    s.src_re[:] = 0.3  # small enough that the light beyond the stamp edge is negligible
    s.src_n[:] = np.minimum(s.src_n, 2.5)
    img = lensed_images(s)
    np.testing.assert_allclose(img.sum(axis=(1, 2)), 1.0, rtol=5e-3)


def test_round_lens_and_source_give_finite_images():
    s = random_systems(10, seed=3)
    s.lens_e1[:] = s.lens_e2[:] = s.src_e1[:] = s.src_e2[:] = 0.0  # q == 1 exactly
    img = lensed_images(s)
    assert np.isfinite(img).all() and (img.sum(axis=(1, 2)) > 0).all()


def test_sis_deflection_is_theta_e_everywhere():
    s = random_systems(1)
    s.lens_e1[:] = s.lens_e2[:] = s.gamma1[:] = s.gamma2[:] = s.lens_x[:] = s.lens_y[:] = 0
    s.theta_e[:] = 1.7
    ang = np.linspace(0, 2 * np.pi, 50)
    ax, ay = deflection((3 * np.cos(ang))[None], (3 * np.sin(ang))[None], s)
    np.testing.assert_allclose(np.hypot(ax, ay), 1.7, rtol=1e-4)  # q is capped at 1 - 1e-4


def test_one_ellipse_convention_matches_lenstronomy_param_util():
    """lensfinder.sky.shapes is lenstronomy's (phi, q) <-> (e1, e2) in both directions, and
    a Tractor position angle East of North maps to the stamp frame's +x = West origin."""
    from lenstronomy.Util import param_util
    rng = np.random.default_rng(3)
    q, phi = rng.uniform(0.2, 1.0, 200), rng.uniform(-np.pi / 2, np.pi / 2, 200)
    e1, e2 = ellipticity(q, phi)
    ref = param_util.phi_q2_ellipticity(phi, q)
    np.testing.assert_allclose(e1, ref[0], atol=1e-12)
    np.testing.assert_allclose(e2, ref[1], atol=1e-12)
    q2, phi2 = axis_ratio_angle(e1, e2, E_MAX_LENSING)
    np.testing.assert_allclose(q2, q, rtol=1e-9)
    np.testing.assert_allclose(np.cos(2 * phi2), np.cos(2 * phi), atol=1e-9)
    # a major axis pointing North (PA 0) lies along +y; pointing East (PA 90 deg) along -x
    assert np.isclose(stamp_angle(0.0), np.pi / 2) and np.isclose(np.cos(stamp_angle(np.pi / 2)), -1.0)
