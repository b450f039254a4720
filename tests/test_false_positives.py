"""The mock sky's false-positive populations: rendered where the catalogue says, with the
flux it says, reaching the parent sample as ordinary LRGs would, deterministically."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lensfinder import PIXSCALE
from lensfinder.select import is_lrg, select_sweep
from lensfinder.sky.coadds import CoaddBrick
from lensfinder.sky.false_positives import (ORDINARY, POPULATIONS, FalsePositiveConfig, _edge_on_disk,
                                            assign_populations, feature_light)
from lensfinder.sky.mock import MockSkyConfig, make_brick_catalog

from conftest import SMALL_SKY, render_mock_sky

# Few, well separated objects, every early type a host: apertures see one galaxy each.
SPARSE = MockSkyConfig(seed=5, bricks=("1501p020",), brick_size_pix=1000, lrg_density=6800.0,
                       lrg_min_sep_arcsec=25.0, lrg_pair_fraction=0.0, field_objects=False, frac_bad_quality=0.0, frac_masked=0.0, no_coverage_stripe_prob=0.0,
                       false_positives=FalsePositiveConfig(rates={p: 1 / len(POPULATIONS) for p in POPULATIONS}))


@pytest.fixture(scope="module")
def sparse_sky(tmp_path_factory):
    return render_mock_sky(tmp_path_factory.mktemp("sparse"), SPARSE)


def test_every_population_is_in_the_images_with_its_catalogued_flux(sparse_sky):
    """Aperture flux (r = 9.5", inside the rendered window) around each isolated host in the written coadds equals the
    catalogue's core flux plus the truth table's uncatalogued flux, within the noise; the
    core alone would not do (the feature's light is really there)."""
    cat = pq.read_table(sparse_sky.catalog_dir / "1501p020.parquet").to_pandas()
    brick = CoaddBrick(sparse_sky.coadd_dir, "1501p020")
    x, y = brick.world_to_pixel(cat.RA.to_numpy(), cat.DEC.to_numpy())
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    radius = 9.5 / PIXSCALE
    ok = (d.min(axis=1) > 2.5 * radius) & (x > radius + 2) & (x < 998 - radius) & (y > radius + 2) & (y < 998 - radius)
    yy, xx = np.mgrid[:1000, :1000]
    seen, extra_r, var_r = set(), 0.0, 0.0
    for i in np.flatnonzero(ok):
        aperture = np.hypot(xx - x[i], yy - y[i]) < radius
        pop = cat.MOCK_POPULATION.iloc[i]
        for j, b in enumerate("GRZ"):
            flux = float(brick.image[j][aperture].sum())
            sigma = float(np.sqrt((1 / brick.invvar[j][aperture]).sum() * 1.5 + 1 / cat[f"FLUX_IVAR_{b}"].iloc[i]))
            expected = cat[f"FLUX_{b}"].iloc[i] + cat[f"MOCK_EXTRA_FLUX_{b}"].iloc[i]
            # the Sersic mixtures hold ~1-2% of a de Vaucouleurs profile's light beyond 9.5" (tails reach 8")
            assert abs(flux - expected) < 5 * sigma + 0.03 * expected, (pop, b, flux, expected)
            if b == "R":
                extra_r, var_r = extra_r + cat.MOCK_EXTRA_FLUX_R.iloc[i], var_r + sigma**2
        seen.add(pop)
    assert seen == set(POPULATIONS)
    assert extra_r > 10 * np.sqrt(var_r)  # without the features the sums would be off by this


def test_feature_light_sits_where_each_population_puts_it():
    """Each population's components lie at the radii (arcsec) it is designed for (projected:
    inclined rings, arms and tails come closer in along their minor axis), sum to
    its hosts' extra flux, and are bluer than the LRG hosts (g - r ~ 1.75)."""
    n = 600
    population = np.repeat(np.array(POPULATIONS), n // len(POPULATIONS))
    x, y = np.arange(n) * 100.0, np.zeros(n)
    comps, extra = feature_light(np.random.default_rng(3), population, x, y, 0.0, FalsePositiveConfig())
    r = np.hypot(comps["x"] - x[comps["host"]], comps["y"]) * PIXSCALE
    ranges = {"blue_companion": (1.5, 4.0), "chance_alignment": (1.5, 4.0), "ring": (1.0, 5.1),
              "spiral_arms": (0.6, 7.5), "edge_on_disk": (2.5, 4.5), "tidal_tails": (0.45, 8.0)}
    for p in POPULATIONS:
        sel = comps["population"] == p
        assert np.array_equal(np.unique(comps["host"][sel]), np.flatnonzero(population == p))
        lo, hi = ranges[p]
        assert lo <= r[sel].min() and r[sel].max() <= hi, (p, r[sel].min(), r[sel].max())
        g_r = -2.5 * np.log10(comps["flux"]["g"][sel].sum() / comps["flux"]["r"][sel].sum())
        assert g_r < 1.2, (p, g_r)
    for b in "grz":
        assert np.allclose(np.bincount(comps["host"], comps["flux"][b], minlength=n), extra[b])


def test_tidal_hosts_show_tails_or_interleaved_shells():
    """About half the tidal-feature hosts get shells: three thin arcs at radii growing by
    ~1.5x, on alternate sides of the host, each spanning 100-160 deg (before projection)."""
    from lensfinder.sky.false_positives import SHELL_FRACTION, _shells, _tidal_tails
    c = _tidal_tails(np.random.default_rng(4), 400)
    per_host = np.bincount(c.host, minlength=400)
    assert set(per_host) == {28, 36}  # two tails of 14 knots, or three shells of 12
    assert abs((per_host == 36).mean() - SHELL_FRACTION) < 0.08
    s = _shells(np.random.default_rng(5), 200)
    # undo the projection's rotation: knots of one shell share a radius in the host's frame
    r = np.hypot(s.dx, s.dy).reshape(200, 3, 12)
    inner, outer = np.median(r[:, 0], axis=1), np.median(r[:, 2], axis=1)
    assert (outer > 1.6 * inner).all() and (inner >= 0.7 * 1.5).all() and (outer <= 2.5 * 1.6**2 * 1.05).all()
    side = np.arctan2(s.dy, s.dx).reshape(200, 3, 12)[:, :, 6]  # each shell's middle knot
    opposite = np.abs(np.angle(np.exp(1j * (side[:, 1] - side[:, 0]))))
    assert np.median(opposite) > np.radians(150)  # the second shell lies on the other side


def test_edge_on_disks_are_tangential():
    c = _edge_on_disk(np.random.default_rng(0), 500)
    radial = np.arctan2(-c.dx, c.dy)  # position angle of the offset, East of North
    misalign = np.abs(((c.pa - radial) % np.pi) - np.pi / 2)
    assert np.median(misalign) < np.radians(20)


def test_population_assignment_follows_the_rates_and_only_hosts_get_one():
    cfg = FalsePositiveConfig(rates={"ring": 0.2, "blue_companion": 0.3})
    is_host = np.arange(20000) % 2 == 0
    pop = assign_populations(np.random.default_rng(1), is_host, cfg)
    assert set(pop[~is_host]) == {ORDINARY}
    frac = pd.Series(pop[is_host]).value_counts(normalize=True)
    assert abs(frac["ring"] - 0.2) < 0.02 and abs(frac["blue_companion"] - 0.3) < 0.02
    assert "spiral_arms" not in frac


def test_rates_are_validated():
    with pytest.raises(ValueError, match="unknown population"):
        FalsePositiveConfig.from_dict({"rates": {"rings": 0.1}})
    with pytest.raises(ValueError, match="sum to <= 1"):
        FalsePositiveConfig.from_dict({"rates": {"ring": 0.7, "spiral_arms": 0.5}})


def test_same_seed_same_features_and_rate_zero_means_none():
    a, ra = make_brick_catalog(SMALL_SKY, SMALL_SKY.bricks[0])
    b, rb = make_brick_catalog(SMALL_SKY, SMALL_SKY.bricks[0])
    assert np.array_equal(a["MOCK_POPULATION"], b["MOCK_POPULATION"])
    assert np.array_equal(ra["x"], rb["x"]) and np.array_equal(ra["flux"]["g"], rb["flux"]["g"])
    none = MockSkyConfig(**{**SMALL_SKY.__dict__, "false_positives": FalsePositiveConfig(rates={})})
    c, rc = make_brick_catalog(none, SMALL_SKY.bricks[0])
    assert set(c["MOCK_POPULATION"]) == {ORDINARY} and rc["n_features"] == 0
    # the catalogue itself does not depend on the features (the Tractor fits the core)
    assert np.array_equal(c["FLUX_R"], a["FLUX_R"])


def test_phase3_counts_each_population_it_selects(mock_sky, tmp_path):
    summary = select_sweep(mock_sky.sweeps[0], tmp_path / "p.parquet", photoz_path=mock_sky.photoz[0])
    parent = pd.read_parquet(tmp_path / "p.parquet")
    counts = parent["population"].value_counts().to_dict()
    assert summary["populations"] == counts
    assert set(POPULATIONS) <= set(counts) and counts[ORDINARY] > 0
    # a host is selected exactly when the same galaxy without its feature would be
    none = MockSkyConfig(**{**SMALL_SKY.__dict__, "false_positives": FalsePositiveConfig(rates={})})
    for brick in SMALL_SKY.bricks:
        with_fp, _ = make_brick_catalog(SMALL_SKY, brick)
        without, _ = make_brick_catalog(none, brick)
        assert np.array_equal(is_lrg(with_fp), is_lrg(without))
