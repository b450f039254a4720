import hashlib

import numpy as np
import pandas as pd
import pytest

from lensfinder.manifest import (
    MANIFEST_PARAMS, DatasetConfig, _matched_controls, _standardised_mean_differences, build_manifest,
    write_manifest,
)
from lensfinder.seeding import row_keys
from lensfinder.sky.shapes import ellipticity

NO_LENSES = pd.DataFrame({"ra": [], "dec": []})


def fake_parent(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.5, 1.0, n)
    e1, e2 = ellipticity(q, rng.uniform(0, np.pi, n))
    bricks = np.array(["1501p020", "1502p020", "1551p020", "1601p021"])
    return pd.DataFrame({
        "galaxy_id": (np.int64(10000) << 42) | (np.int64(1) << 22) | np.arange(n, dtype=np.int64),
        "brickname": bricks[rng.integers(0, 4, n)], "ra": rng.uniform(150, 152, n), "dec": rng.uniform(1, 3, n),
        "type": "DEV", "mag_r": rng.uniform(19, 22, n), "shape_r": rng.uniform(0.5, 2, n),
        "mag_g": rng.uniform(21, 24, n), "mag_z": rng.uniform(18, 20.4, n), "mag_w1": rng.uniform(16.5, 19, n),
        "z_lens": np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0.3, 1.0, n)),
        "shape_e1": e1.astype(np.float32), "shape_e2": e2.astype(np.float32),
        **{f"psfsize_{b}": rng.uniform(1.0, 1.6, n) for b in "grz"},
        **{f"psfdepth_{b}": rng.uniform(50, 1000, n) for b in "grz"},
        **{f"mw_transmission_{b}": rng.uniform(0.85, 1.0, n) for b in "grz"},
        **{f"nobs_{b}": rng.integers(1, 6, n).astype(np.int16) for b in "grz"},
    })


def cfg(**kw) -> DatasetConfig:
    return DatasetConfig.from_dict(kw.pop("name", "ds"), kw)


def test_paired_controls_are_the_same_galaxies_and_row_split_leaks():
    m, audit = build_manifest(fake_parent(), cfg(control="paired", split="row"), 1, NO_LENSES)
    assert len(m) == 1200 and (m.label == 1).sum() == 600
    twins = m.set_index("sample_id")
    assert (twins.loc[m.twin_sample_id, "galaxy_id"].to_numpy() == m.galaxy_id.to_numpy()).all()
    assert (twins.loc[m.twin_sample_id, "label"].to_numpy() != m.label.to_numpy()).all()
    assert audit["leaky"] and audit["paired_twins_across_splits"] > 0
    assert m.loc[m.label == 0, list(MANIFEST_PARAMS)].isna().all().all()
    uniform_model = [k for k in MANIFEST_PARAMS if k not in ("lens_sigma", "src_z")]  # theta_e_model: uniform
    assert m.loc[m.label == 1, uniform_model].notna().all().all()
    assert m.loc[m.label == 1, ["lens_sigma", "src_z"]].isna().all().all()


@pytest.mark.parametrize("split", ["galaxy", "sky"])
def test_galaxy_and_sky_splits_do_not_leak(split):
    m, audit = build_manifest(fake_parent(), cfg(control="paired", split=split, healpix_nside=256), 1, NO_LENSES)
    assert audit["galaxies_in_multiple_splits"] == 0 and audit["paired_twins_across_splits"] == 0
    assert not audit["leaky"]
    if split == "sky":
        assert audit["healpix_pixels_in_multiple_splits"] == 0
    assert set(m.split) == {"train", "val", "test"}


def test_unpaired_uses_disjoint_galaxies_with_configured_balance():
    m, audit = build_manifest(fake_parent(), cfg(control="unpaired", split="galaxy", pos_fraction=0.3), 1, NO_LENSES)
    assert m.galaxy_id.is_unique
    assert abs((m.label == 1).mean() - 0.3) < 0.01
    assert (m.twin_sample_id == -1).all()


def test_matched_controls_follow_the_positives_distribution():
    rng = np.random.default_rng(3)
    pos = pd.DataFrame({"mag_r": rng.normal(20, 0.5, 400), "psfsize_r": rng.normal(1.2, 0.05, 400),
                        "psfdepth_r": rng.normal(300, 30, 400)})
    pool = pd.DataFrame({"mag_r": rng.normal(21, 1.0, 3000), "psfsize_r": rng.normal(1.35, 0.1, 3000),
                         "psfdepth_r": rng.normal(250, 60, 3000)})
    idx = _matched_controls(pos, pool, 400, row_keys(1, "m", np.arange(3000, dtype=np.int64)))
    before = _standardised_mean_differences(pos, pool)
    after = _standardised_mean_differences(pos, pool.iloc[idx])
    assert len(set(idx)) == len(idx) == 400
    for f in before:
        assert abs(after[f]) < 0.5 * abs(before[f]), (f, before[f], after[f])


def test_unpaired_matched_keeps_a_larger_pool():
    m, audit = build_manifest(fake_parent(900), cfg(control="unpaired_matched", split="sky"), 1, NO_LENSES)
    assert m.galaxy_id.is_unique and abs((m.label == 1).mean() - 0.5) < 0.01
    assert audit["n_galaxies_used"] < 900 * 0.75  # a third of the galaxies stayed in the pool


def test_unlensed_source_controls_are_other_easy_galaxies_with_their_own_draws():
    """unlensed_controls per positive: label-0 rows on galaxies no positive uses, each with
    the lens system drawn from its own galaxy's stream, exactly as a positive's would be."""
    from lensfinder.population import UNLENSED_SOURCE, draw_parameters

    c = cfg(control="matched_after_injection", split="galaxy", unlensed_controls=0.5)
    m, audit = build_manifest(fake_parent(900), c, 1, NO_LENSES)
    pos, unl = m[m.label == 1], m[m.population == UNLENSED_SOURCE]
    assert m.galaxy_id.is_unique and (unl.label == 0).all()
    assert len(unl) == round(0.5 * len(pos)) == audit["n_unlensed_controls"] > 100
    drawn = draw_parameters(c.priors, 1, c.name, unl)
    for k in ("theta_e", "src_x", "src_mag_r", "knot0_flux"):
        np.testing.assert_array_equal(unl[k].to_numpy(float), drawn[k].astype(float))
    assert unl.theta_e.notna().all()
    other = m[(m.label == 0) & (m.population != UNLENSED_SOURCE)]
    assert other[list(MANIFEST_PARAMS)].isna().all().all() and len(other) > 0
    # with easy galaxies to spare they come out of the pool, not out of the positives
    m0, _ = build_manifest(fake_parent(900), cfg(control="matched_after_injection", split="galaxy"), 1, NO_LENSES)
    assert (m0.population != UNLENSED_SOURCE).all() and set(m0.galaxy_id[m0.label == 1]) == set(pos.galaxy_id)
    with pytest.raises(ValueError, match="unlensed_controls"):
        cfg(control="paired", split="row", unlensed_controls=1.0)
    with pytest.raises(ValueError, match="unlensed_controls"):
        cfg(control="unpaired", split="sky", unlensed_controls=-1)


def test_several_systems_per_galaxy_are_independent_draws_with_unique_ids():
    """systems_per_galaxy k: k rows per positive and unlensed-control galaxy, each with its
    own draws and sample_id, in the galaxy's split; system 0 is the k = 1 draw; the pool
    grows with the positive rows, so a galaxy budget yields more lenses."""
    from lensfinder.manifest import SYSTEM_SHIFT
    from lensfinder.population import UNLENSED_SOURCE

    base = dict(control="matched_after_injection", split="sky", unlensed_controls=1.0, match_pool_factor=1.5)
    m1, a1 = build_manifest(fake_parent(1200), cfg(**base), 1, NO_LENSES)
    m3, a3 = build_manifest(fake_parent(1200), cfg(**base, systems_per_galaxy=3), 1, NO_LENSES)
    assert "system" not in m1 and m1.sample_id.is_unique
    assert m3.sample_id.is_unique and a3["systems_per_galaxy"] == 3
    drawn = m3[m3.population.eq(UNLENSED_SOURCE) | m3.label.eq(1)]
    assert (drawn.groupby(["galaxy_id", "label"]).system.agg(sorted).map(tuple) == (0, 1, 2)).all()
    assert (m3[~m3.index.isin(drawn.index)].system == 0).all()
    np.testing.assert_array_equal(m3.sample_id.to_numpy() >> SYSTEM_SHIFT, m3.system.to_numpy())
    assert (m3.groupby("galaxy_id").split.nunique() == 1).all()
    # each system its own draw: no two systems of a galaxy share a source position or magnitude
    assert drawn.groupby("galaxy_id").src_x.nunique().eq(3).all()
    assert drawn.groupby("galaxy_id").src_mag_r.nunique().eq(3).all()
    # candidates per positive row: 1.5 (pool + unlensed rows), one row per pool galaxy
    n_pos1, n_pos3 = ((m.label == 1).sum() for m in (m1, m3))
    assert n_pos3 > 2 * n_pos1
    assert abs((m3.label == 0).sum() / n_pos3 - 1.5) < 0.05
    # system 0 of a galaxy is drawn exactly as with k = 1
    c1 = cfg(**base)
    from lensfinder.population import draw_parameters
    s0 = drawn[drawn.system == 0]
    ref = draw_parameters(c1.priors, 1, c1.name, s0.drop(columns="system"))
    np.testing.assert_array_equal(s0.src_x.to_numpy(float), ref["src_x"])
    with pytest.raises(ValueError, match="systems_per_galaxy"):
        cfg(control="paired", split="row", systems_per_galaxy=2)
    with pytest.raises(ValueError, match="systems_per_galaxy"):
        cfg(control="unpaired", split="sky", systems_per_galaxy=0)


def test_shared_hosts_carry_both_arcs_and_unlensed_sources():
    """shared_hosts: every positive galaxy also carries round(k x unlensed_controls)
    unlensed-source systems, numbered after its k lensed ones, each its own draw."""
    from lensfinder.population import UNLENSED_SOURCE

    c = cfg(control="matched_after_injection", split="sky", unlensed_controls=0.5, systems_per_galaxy=4,
            match_pool_factor=1.0, shared_hosts=True)
    m, audit = build_manifest(fake_parent(900), c, 1, NO_LENSES)
    pos, unl = m[m.label == 1], m[m.population == UNLENSED_SOURCE]
    assert set(unl.galaxy_id) == set(pos.galaxy_id) and m.sample_id.is_unique
    assert (pos.groupby("galaxy_id").system.agg(sorted).map(tuple) == (0, 1, 2, 3)).all()
    assert (unl.groupby("galaxy_id").system.agg(sorted).map(tuple) == (4, 5)).all()
    both = pd.concat([pos, unl])
    assert both.groupby("galaxy_id").src_x.nunique().eq(6).all()
    assert (m.groupby("galaxy_id").split.nunique() == 1).all()
    # candidates per positive row: 1 (0.5 unlensed rows + 0.5 pool galaxies)
    assert abs((m.label == 0).sum() / len(pos) - 1.0) < 0.05
    with pytest.raises(ValueError, match="shared_hosts"):
        cfg(control="unpaired", split="sky", shared_hosts=True)


def test_lensable_hosts_spend_no_galaxy_on_a_system_phase_4c_could_never_make():
    """lensable_hosts: every positive / unlensed-control galaxy has a draw among the first
    max_attempts that passes the geometric criteria; every easy galaxy left out has none;
    the draws of a galaxy do not change."""
    from lensfinder.detectability import Criteria, geometry_ok
    from lensfinder.manifest import lensable
    from lensfinder.population import UNLENSED_SOURCE, draw_parameters

    crit = Criteria(min_theta_e_fwhm=1.0, max_attempts=5)
    base = dict(control="matched_after_injection", split="sky", unlensed_controls=1.0)
    parent = fake_parent(900)
    m0, a0 = build_manifest(parent, cfg(**base), 1, NO_LENSES)
    c = cfg(**base, lensable_hosts=True)
    m, audit = build_manifest(parent, c, 1, NO_LENSES, criteria=crit)
    hosts = m[(m.label == 1) | (m.population == UNLENSED_SOURCE)]
    ok = lensable(parent.set_index("galaxy_id").loc[hosts.galaxy_id].reset_index(), c, 1, crit)
    assert ok.all() and len(hosts) > 50
    # the easy galaxies left out: none of their draws would pass
    easy = parent[~parent.galaxy_id.isin(hosts.galaxy_id)].reset_index(drop=True)
    out = easy[~lensable(easy, c, 1, crit)]
    assert audit["n_unlensable_hosts"] == len(out) > 0 and a0["n_unlensable_hosts"] == 0
    for attempt in range(crit.max_attempts):
        p = draw_parameters(c.priors, 1, c.name, out, attempt)
        assert not (np.isfinite(p["theta_e"]) & geometry_ok(p["theta_e"], p["src_re"], out.psfsize_r.to_numpy(), crit)).any()
    # a galaxy's system is the same draw either way
    both = m0[m0.label == 1].merge(m[m.label == 1], on="galaxy_id", suffixes=("", "_l"))
    assert len(both) > 0 and (both.src_x == both.src_x_l).all()
    # more positives: the unlensable ones no longer take a positive's place
    assert (m.label == 1).sum() >= (m0.label == 1).sum()
    with pytest.raises(ValueError, match="recognisability criteria"):
        build_manifest(parent, c, 1, NO_LENSES)
    with pytest.raises(ValueError, match="lensable_hosts"):
        cfg(control="paired", split="row", lensable_hosts=True)


def test_galaxies_near_known_lenses_are_never_controls():
    parent = fake_parent()
    known = pd.DataFrame({"ra": parent.ra.iloc[:5] + 3 / 3600, "dec": parent.dec.iloc[:5]})  # 3" away
    m, audit = build_manifest(parent, cfg(control="paired", split="galaxy"), 1, known)
    assert audit["n_vetoed_known_lens"] >= 5
    assert not m.galaxy_id.isin(parent.galaxy_id.iloc[:5]).any()


def test_parameters_follow_priors_and_the_lrg_shape():
    c = cfg(control="unpaired", split="galaxy", priors={"lens_q_scatter": 0.0, "theta_e": [1.0, 2.0]})
    parent = fake_parent()
    m, _ = build_manifest(parent, c, 1, NO_LENSES)
    pos = m[m.label == 1].merge(parent[["galaxy_id"]], on="galaxy_id")
    assert pos.theta_e.between(1.0, 2.0).all()
    from lensfinder.sky.shapes import axis_ratio_angle
    q_light, _ = axis_ratio_angle(pos.shape_e1.to_numpy(np.float64), pos.shape_e2.to_numpy(np.float64))
    np.testing.assert_allclose(pos.lens_q, np.clip(q_light, 0.5, 1.0), atol=1e-6)
    beta = np.hypot(pos.src_x, pos.src_y) / pos.theta_e
    inside = pos.source_in_caustic.to_numpy()
    assert (beta[inside] <= 1 + 1e-6).all() and (beta[~inside] >= 1 - 1e-6).all()
    assert 0.7 < inside.mean() < 0.9


def test_theta_e_follows_the_lens_luminosity_and_redshifts():
    """velocity_dispersion: theta_E = 4 pi (sigma/c)^2 D_ls/D_s with sigma from the LRG's own
    rest-frame luminosity (Faber-Jackson + scatter); no redshift, no theta_E."""
    from lensfinder import lens_mass
    fj = {"sigma_ref": 230.0, "mag_ref": -22.5, "z_ref": 0.55, "gamma": 4.0, "evolution": 1.5, "scatter_dex": 0.0}
    c = cfg(control="unpaired", split="galaxy", priors={"theta_e_model": "velocity_dispersion", "faber_jackson": fj,
                                                        "source_z": [1.0, 3.0]})
    parent = fake_parent()
    m, _ = build_manifest(parent, c, 1, NO_LENSES)
    pos = m[m.label == 1]
    no_z = pos.z_lens.isna()
    assert no_z.any() and pos.loc[no_z, ["theta_e", "lens_sigma", "src_z"]].isna().all().all()
    p = pos[~no_z]
    assert (p.src_z >= np.maximum(1.0, p.z_lens + 0.1) - 1e-6).all() and (p.src_z <= 3.0 + 1e-6).all()
    mags = p[["mag_g", "mag_r", "mag_z", "mag_w1"]].to_numpy(np.float64)
    abs_r = lens_mass.rest_frame_abs_mag(mags, p.z_lens.to_numpy())
    sigma = 230.0 * 10 ** (-(abs_r - (-22.5 + 1.5 * (0.55 - p.z_lens.to_numpy()))) / 10)
    np.testing.assert_allclose(p.lens_sigma, sigma, rtol=1e-5)  # no scatter: the mean relation
    np.testing.assert_allclose(p.theta_e, lens_mass.einstein_radius(sigma, p.z_lens, p.src_z), rtol=1e-5)
    with_scatter = build_manifest(parent, cfg(control="unpaired", split="galaxy", priors={
        "theta_e_model": "velocity_dispersion", "faber_jackson": {**fj, "scatter_dex": 0.08}}), 1, NO_LENSES)[0]
    resid = np.log10(with_scatter[with_scatter.label == 1].lens_sigma.to_numpy()[~no_z.to_numpy()] / sigma)
    assert abs(resid.std() - 0.08) < 0.01 and abs(resid.mean()) < 0.01
    audit = build_manifest(parent, c, 1, NO_LENSES)[1]["first_draws"]
    assert audit["n_positives"] == len(pos) and audit["n_without_theta_e"] == int(no_z.sum())
    assert audit["quantiles"]["theta_e"]["p50"] == pytest.approx(np.median(p.theta_e), abs=1e-4)


def test_einstein_radius_and_distances_match_astropy():
    from astropy.cosmology import Planck18
    from lensfinder import lens_mass
    zl, zs = np.array([0.2, 0.5, 0.9]), np.array([1.0, 2.0, 3.5])
    ratio = (Planck18.angular_diameter_distance(zl, zs) / Planck18.angular_diameter_distance(zs)).value
    np.testing.assert_allclose(lens_mass.distance_ratio(zl, zs), ratio, rtol=1e-5)
    np.testing.assert_allclose(lens_mass.distance_modulus(zl), Planck18.distmod(zl).value, atol=1e-4)
    # 250 km/s at z_l 0.5, z_s 2: ~1.1" (the textbook SIS number)
    assert 1.0 < lens_mass.einstein_radius(np.array([250.0]), [0.5], [2.0])[0] < 1.3
    # a flat f_nu SED: the rest-frame magnitude is m - DM + 2.5 log10(1 + z)
    m = lens_mass.rest_frame_abs_mag(np.full((3, 4), 20.0), zl)
    np.testing.assert_allclose(m, 20.0 - Planck18.distmod(zl).value + 2.5 * np.log10(1 + zl), atol=1e-4)


def test_source_magnitudes_follow_the_galaxy_counts():
    c = cfg(control="unpaired", split="galaxy", priors={"source_mag_r": [22.0, 25.0], "source_mag_model": "counts"})
    m, _ = build_manifest(fake_parent(2000), c, 1, NO_LENSES)
    mag = m.loc[m.label == 1, "src_mag_r"].to_numpy()
    assert mag.min() >= 22.0 and mag.max() <= 25.0
    # dN/dm ~ 10^(0.33 m): the faint half of the range holds (1 - 10^-0.495) / (1 - 10^-0.99) = 76%
    assert abs((mag > 23.5).mean() - 0.758) < 0.04


def test_clumpy_sources_have_their_knots_inside_the_half_light_ellipse():
    c = cfg(control="unpaired", split="galaxy", priors={"knots_max": 3, "knot_flux": [0.05, 0.15],
                                                        "knot_re": [0.03, 0.1]})
    m, _ = build_manifest(fake_parent(2000), c, 1, NO_LENSES)
    pos = m[m.label == 1]
    flux = pos[[f"knot{i}_flux" for i in range(3)]].to_numpy()
    n_knots = (flux > 0).sum(axis=1)
    assert np.bincount(n_knots, minlength=4).min() > 0.2 * len(pos)  # 0..3 knots, equally often
    assert (flux[flux > 0] >= 0.05).all() and (flux <= 0.15).all()
    assert ((flux > 0).cumsum(axis=1) == np.arange(1, 4)).sum() == (flux > 0).sum()  # slots fill in order
    assert pos.loc[n_knots > 0, "knot_re"].between(0.03, 0.1).all() and (pos.loc[n_knots == 0, "knot_re"] == 0).all()
    g_r = pos[[f"knot{i}_g_r" for i in range(3)]].to_numpy()
    assert (g_r[flux == 0] == 0).all() and abs(g_r[flux > 0].mean()) < 0.02 and abs(g_r[flux > 0].std() - 0.1) < 0.02
    from lensfinder.sky.shapes import ellipticity
    from lensfinder.lensing import _source_terms, LensSystems
    e1, e2 = ellipticity(pos.src_q.to_numpy(np.float64), pos.src_phi.to_numpy(np.float64))
    terms = _source_terms(LensSystems(*[np.zeros(len(pos))] * 7, src_x=np.zeros(len(pos)), src_y=np.zeros(len(pos)),
                                      src_re=pos.src_re.to_numpy(), src_n=np.ones(len(pos)), src_e1=e1, src_e2=e2))
    for i in range(3):  # the Sersic profile's own elliptical radius of each knot is <= R_e
        on = flux[:, i] > 0
        x, y = pos[f"knot{i}_x"].to_numpy()[on], pos[f"knot{i}_y"].to_numpy()[on]
        cs, sn, q = terms["cos"][on], terms["sin"][on], terms["q"][on]
        xr, yr = cs * x + sn * y, -sn * x + cs * y
        assert (np.sqrt(q * xr**2 + yr**2 / q) <= pos.src_re.to_numpy()[on] * (1 + 1e-4)).all()


def test_rows_do_not_depend_on_input_order_or_other_galaxies(tmp_path):
    parent = fake_parent()
    c = cfg(control="unpaired", split="sky")
    a, _ = build_manifest(parent, c, 1, NO_LENSES)
    b, _ = build_manifest(parent.sample(frac=1, random_state=0), c, 1, NO_LENSES)
    pd.testing.assert_frame_equal(a, b)
    # a positive's parameters depend only on (seed, dataset, galaxy)
    c2 = cfg(control="paired", split="sky")
    full, _ = build_manifest(parent, c2, 1, NO_LENSES)
    part, _ = build_manifest(parent.iloc[:300], c2, 1, NO_LENSES)
    merged = part.merge(full, on="sample_id", suffixes=("", "_full"))
    np.testing.assert_array_equal(merged.theta_e, merged.theta_e_full)
    np.testing.assert_array_equal(merged.seed, merged.seed_full)


def test_same_seed_gives_a_byte_identical_manifest_file(tmp_path):
    parent_path = tmp_path / "parent.parquet"
    fake_parent().to_parquet(parent_path)
    known = tmp_path / "known.csv"
    known.write_text("ra,dec\n0,0\n")
    digests = []
    for i in range(2):
        write_manifest(parent_path, cfg(control="paired", split="sky"), 7, known, tmp_path / f"m{i}.parquet",
                       tmp_path / f"a{i}.json")
        digests.append(hashlib.sha256((tmp_path / f"m{i}.parquet").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    write_manifest(parent_path, cfg(control="paired", split="sky"), 8, known, tmp_path / "m2.parquet", tmp_path / "a2.json")
    assert hashlib.sha256((tmp_path / "m2.parquet").read_bytes()).hexdigest() != digests[0]


def test_invalid_dataset_config_is_rejected():
    with pytest.raises(ValueError, match="control must be one of"):
        cfg(control="twins", split="sky")
    with pytest.raises(ValueError, match="split_fractions"):
        cfg(control="paired", split="sky", split_fractions={"train": 0.9, "val": 0.2, "test": 0.1})
    with pytest.raises(ValueError, match=r"split_fractions .*must each be > 0"):  # the one check (was also in common.smk)
        cfg(control="paired", split="sky", split_fractions={"train": 0.9, "val": 0.1, "test": 0.0})


def test_a_split_without_both_classes_fails_phase_4a_naming_the_dataset():
    from lensfinder.manifest import EmptySplit, check_splits

    audit = {"dataset": "v5_unpaired", "split_scheme": "sky", "healpix_nside": 1024, "n_rows": 40,
             "counts": {"train": {"positives": 3, "controls": 7}, "val": {"positives": 17, "controls": 13},
                        "test": {"positives": 0, "controls": 0}}}
    with pytest.raises(EmptySplit, match=r"dataset v5_unpaired: split\(s\) without positives or controls: \{'test'"):
        check_splits(audit)
    audit["counts"]["test"] = {"positives": 1, "controls": 1}
    check_splits(audit)
