import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from lensfinder.gallery import pick_pairs, write_gallery, write_injection_figure
from lensfinder.inject import InjectConfig, empty_shard_note, gather_reports, inject_brick, inject_shard, shard_bricks
from lensfinder.sky.cutout_source import LocalCoadds
from lensfinder.manifest import DatasetConfig, write_manifest
from lensfinder.population import DRAWN_COLUMNS, Population, Priors
from lensfinder.select import gather_parent, select_sweep
from lensfinder.sky.bricks import coadd_path
from lensfinder.sky.coadds import CoaddBrick
from lensfinder.stamps import ROW_GROUP_ROWS, decode_stamps, iter_row_groups

from conftest import REPO, SMALL_SKY


# the demo's lens population (config.yaml) with clumpy sources
BRIGHT = {"source_mag_r": [20.0, 23.0], "frac_in_caustic": 1.0, "theta_e_model": "velocity_dispersion",
          "source_z": [1.0, 3.0], "source_mag_model": "counts", "knots_max": 3}


@pytest.fixture(scope="module")
def manifests(mock_sky, tmp_path_factory):
    root = tmp_path_factory.mktemp("phase4")
    parts, sums = [], []
    for i, sweep in enumerate(mock_sky.sweeps):
        parts.append(root / f"{i}.parquet")
        sums.append(select_sweep(sweep, parts[-1], photoz_path=mock_sky.photoz[i]))
    gather_parent(parts, sums, root / "parent.parquet", root / "sel.json")
    out = {}
    for name, control, split, extra in (("paired", "paired", "row", {}), ("unpaired", "unpaired_matched", "sky", {}),
                                        ("unlensed", "unpaired", "galaxy", {"unlensed_controls": 1.0})):
        write_manifest(root / "parent.parquet",
                       DatasetConfig.from_dict(name, {"control": control, "split": split, "priors": BRIGHT, **extra}),
                       3, REPO / "resources/known_lenses.csv.gz", root / f"{name}.parquet", root / f"{name}.json")
        out[name] = root / f"{name}.parquet"
    return root, out


POPULATION = {name: Population(Priors.from_dict(BRIGHT), 3, name) for name in ("paired", "unpaired", "unlensed")}


@pytest.fixture(scope="module")
def unpaired_local(mock_sky, manifests, tmp_path_factory):
    """The unpaired dataset's stamps in one shard, local coadds, default settings: (reports, parts)."""
    return _run(manifests[1]["unpaired"], mock_sky.coadd_dir, tmp_path_factory.mktemp("unpaired"), n_shards=1)


def _run(manifest, coadd_dir, out_dir, n_shards=2, **kw):
    population = POPULATION[manifest.stem]
    reports = [inject_shard(manifest, LocalCoadds(coadd_dir), k, n_shards, out_dir / f"part-{k}.parquet",
                            out_dir / f"part-{k}.json", population, InjectConfig(**kw)) for k in range(n_shards)]
    return reports, [out_dir / f"part-{k}.parquet" for k in range(n_shards)]


def test_shards_cover_every_brick_once():
    names = np.array(["b"] * 5 + ["a"] * 3 + ["c"] * 7 + ["d"])
    shards = shard_bricks(names, 3)
    assert sorted(sum(shards, [])) == ["a", "b", "c", "d"]
    many = shard_bricks(names, 10)  # more shards than bricks: one brick each, the rest empty
    assert sorted(map(len, many)) == [0] * 6 + [1] * 4


def test_shards_are_balanced_by_rows_whatever_the_brick_order():
    # small bricks first in name order: a cut by cumulative rows put all of them in shard 0
    names = np.array(["a"] + ["b"] + ["c"] + ["d"] * 100 + ["e"] * 60 + ["f"] * 50)
    shards = shard_bricks(names, 3)
    rows = {b: int((names == b).sum()) for b in "abcdef"}
    assert sorted(sum(rows[b] for b in s) for s in shards) == [53, 60, 100]  # the best split
    assert all(s for s in shard_bricks(np.array(["a", "b", "c", "d"] + ["e"] * 40), 2))


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_shards_beyond_the_bricks_are_counted_and_named_with_the_fix(mock_sky, manifests, tmp_path):
    """Issue 28: dr10.yaml's 64 shards over a handful of bricks made most phase-4c jobs empty
    without a word; the dataset report counts them and says what to set."""
    root, m = manifests
    n_bricks = len(set(pq.read_table(m["paired"], columns=["brickname"])["brickname"].to_pylist()))
    n_shards = n_bricks + 3
    reports, _ = _run(m["paired"], mock_sky.coadd_dir, tmp_path, n_shards=n_shards)
    total = gather_reports(reports, tmp_path / "report.json")
    assert (total["n_bricks"], total["n_empty_shards"]) == (n_bricks, 3)
    assert empty_shard_note(total) == (f"3 of {n_shards} phase-4c shards held no brick (the manifest spans "
                                       f"{n_bricks} bricks): set inject.shards to at most {n_bricks} for this sky")
    nothing = [dict(r, n_written=0, n_positives_written=0, n_unlensed_controls_written=0, n_skipped=r["n_rows"],
                    skipped={k: 0 for k in r["skipped"]} | {"not_recognisable": r["n_rows"]}) for r in reports]
    with pytest.raises(RuntimeError, match=r"empty.json: no shard wrote a stamp \(\d+ manifest rows; skipped: "
                                           r"\{'not_recognisable': \d+"):
        gather_reports(nothing, tmp_path / "empty.json")
    assert not (tmp_path / "empty.json").exists()


def test_stamps_controls_are_raw_cutouts_and_positives_carry_arcs(mock_sky, manifests, tmp_path):
    root, m = manifests
    reports, parts = _run(m["paired"], mock_sky.coadd_dir, tmp_path, write_npz=True)
    total = gather_reports(reports, tmp_path / "report.json")
    manifest = pq.read_table(m["paired"])
    assert total["n_rows"] == manifest.num_rows
    assert total["n_written"] + total["n_skipped"] == total["n_rows"] and total["n_skipped"] > 0
    assert sum(total["skipped"].values()) >= total["n_skipped"]
    assert total["n_bricks"] == len(set(manifest["brickname"].to_pylist())) and total["n_empty_shards"] == 0
    assert empty_shard_note(total) is None
    brick = CoaddBrick(mock_sky.coadd_dir, SMALL_SKY.bricks[0])
    n_checked = 0
    for path in parts:
        pf = pq.ParquetFile(path)
        assert all(pf.metadata.row_group(i).num_rows <= ROW_GROUP_ROWS for i in range(pf.num_row_groups))
        for meta, stamps in iter_row_groups(path):
            d = meta.to_pandas()
            assert np.isfinite(stamps).all()
            np.testing.assert_array_equal(decode_stamps(pq.read_table(path, columns=["stamp"])["stamp"])[: len(d)],
                                          stamps)
            on = (d.brickname == SMALL_SKY.bricks[0]).to_numpy()
            if not on.any():
                continue
            raw = brick.cutouts(d.ra[on].to_numpy(), d.dec[on].to_numpy()).image
            ctl = (d.label[on] == 0).to_numpy()
            np.testing.assert_array_equal(stamps[on][ctl], raw[ctl])  # controls: the real cutout, untouched
            pos = ~ctl
            extra = (stamps[on][pos] - raw[pos]).sum(axis=(2, 3))  # arc + its noise, per band
            arc = d.loc[d.index[on][pos], ["arc_flux_g", "arc_flux_r", "arc_flux_z"]].to_numpy()
            assert (arc > 0).all()
            np.testing.assert_allclose(extra, arc, rtol=0.05, atol=0.05)
            n_checked += int(pos.sum())
    assert n_checked > 10


def test_every_positive_is_recognisable_and_redraws_are_reproducible(manifests, unpaired_local):
    """No row labelled 1 fails the criteria (recomputed from the stored columns); systems
    that failed were redrawn, and each kept redraw is exactly the population's draw for
    (seed, dataset, galaxy, attempt); diagnostics are set for positives only."""
    manifest = manifests[1]["unpaired"]
    reports, parts = unpaired_local
    d = pq.read_table(parts[0]).drop_columns(["stamp"]).to_pandas()
    pos, ctl = d[d.label == 1], d[d.label == 0]
    c = InjectConfig().recognisable
    assert len(pos) > 20
    assert (pos.n_images >= c.min_images).all() and (pos.mu_total >= c.min_magnification).all()
    assert (pos.arc_snr >= c.min_arc_snr).all() and pos.resolved.all()
    assert (pos.theta_e**2 > pos.src_re**2 + (pos.psfsize_r / 2) ** 2).all()
    assert all(len(m) == k for m, k in zip(pos.image_magnifications, pos.n_images))
    assert (pos.magnification > 0.3).all() and pos.lens_x_pix.between(31.5, 32.5).all()
    assert ctl.arc_snr.isna().all() and (ctl.n_images == -1).all() and ctl.resolved.isna().all()
    assert reports[0]["redraws"] > 0 and sum(reports[0]["first_draw_failures"].values()) > 0
    redrawn = pos[pos.draw_attempt > 0]
    assert len(redrawn) > 0
    first = pq.read_table(manifest).to_pandas().set_index("sample_id")
    for attempt, rows in redrawn.groupby("draw_attempt"):
        again = POPULATION["unpaired"].draw(rows, int(attempt))
        for k in DRAWN_COLUMNS:
            np.testing.assert_allclose(rows[k].to_numpy(float), again[k].astype(np.float32).astype(float), rtol=1e-6)
    kept_first = pos[pos.draw_attempt == 0].set_index("sample_id")
    np.testing.assert_array_equal(kept_first.theta_e, first.loc[kept_first.index, "theta_e"])


def test_several_systems_of_one_galaxy_are_different_lenses_whose_redraws_reproduce(mock_sky, manifests, tmp_path):
    """systems_per_galaxy: each of a galaxy's systems is its own recognisable lens on the
    same cutout (different arcs), and a redrawn system is the population's draw for (seed,
    dataset, galaxy, attempt, system)."""
    root = manifests[0]
    c = DatasetConfig.from_dict("multi", {"control": "unpaired", "split": "galaxy", "priors": BRIGHT,
                                          "unlensed_controls": 1.0, "systems_per_galaxy": 3, "max_galaxies": 60})
    write_manifest(root / "parent.parquet", c, 3, REPO / "resources/known_lenses.csv.gz", tmp_path / "multi.parquet",
                   tmp_path / "multi.json")
    population = Population(Priors.from_dict(BRIGHT), 3, "multi")
    inject_shard(tmp_path / "multi.parquet", LocalCoadds(mock_sky.coadd_dir), 0, 1, tmp_path / "s.parquet",
                 tmp_path / "s.json", population, InjectConfig())
    t = pq.read_table(tmp_path / "s.parquet")
    d = t.drop_columns(["stamp"]).to_pandas()
    stamps = decode_stamps(t["stamp"])
    assert d.sample_id.is_unique and set(d.system) == {0, 1, 2}
    pos = d[d.label == 1]
    multi = pos.groupby("galaxy_id").filter(lambda g: len(g) > 1)
    assert multi.galaxy_id.nunique() >= 3
    for _, g in multi.groupby("galaxy_id"):
        a, b = stamps[g.index[0]], stamps[g.index[1]]
        assert np.abs(a - b).max() > 0 and g.src_x.nunique() == len(g)
    redrawn = pos[pos.draw_attempt > 0]
    assert len(redrawn) and (redrawn.system > 0).any()
    for attempt, rows in redrawn.groupby("draw_attempt"):
        again = population.draw(rows, int(attempt))
        np.testing.assert_allclose(rows.src_x.to_numpy(float), again["src_x"].astype(np.float32).astype(float), rtol=1e-6)


def test_positives_follow_their_lens_and_some_have_knots(unpaired_local):
    """theta_E is each LRG's own (velocity dispersion and source redshift stored with it),
    and a quarter of the sources are smooth (0 of 0..3 knots)."""
    reports, parts = unpaired_local
    d = pq.read_table(parts[0]).drop_columns(["stamp"]).to_pandas()
    pos = d[d.label == 1]
    from lensfinder.lens_mass import einstein_radius
    np.testing.assert_allclose(pos.theta_e, einstein_radius(pos.lens_sigma.to_numpy(float), pos.z_lens.to_numpy(float),
                                                            pos.src_z.to_numpy(float)), rtol=1e-4)
    assert pos.lens_sigma.between(100, 500).all() and (pos.src_z > pos.z_lens).all()
    assert 0.1 < (pos.knot0_flux == 0).mean() < 0.5 and (pos.knot2_flux > 0).any()
    assert reports[0]["skipped"]["no_lens_redshift"] == 0


def test_knots_have_their_own_colours_and_fluxes_add_up_to_the_source():
    from lensfinder.inject import component_fluxes
    from lensfinder.photometry import mag_to_flux
    p = {"src_mag_g": np.array([22.3, 22.3]), "src_mag_r": np.array([22.0, 22.0]), "src_mag_z": np.array([21.8, 21.8])}
    for i in range(3):
        p.update({f"knot{i}_flux": np.array([0.1 * (i < 2), 0.0]), f"knot{i}_g_r": np.array([-0.1, 0.0]),
                  f"knot{i}_r_z": np.array([0.05, 0.0])})
    rows = pa.table({f"mw_transmission_{b}": [0.9, 1.0] for b in "grz"})
    f = component_fluxes(p, rows)  # (2, 3, 4)
    total = np.stack([mag_to_flux(p[f"src_mag_{b}"]) for b in "grz"], axis=1) * np.array([0.9, 1.0])[:, None]
    np.testing.assert_allclose(f.sum(axis=2), total, rtol=1e-12)  # knots + Sersic part = the drawn totals
    np.testing.assert_allclose(f[0, 1, 1:3], 0.1 * total[0, 1], rtol=1e-12)  # 10% of the r flux each
    np.testing.assert_allclose(-2.5 * np.log10(f[0, 0, 1] / f[0, 1, 1]), -0.1, atol=1e-12)  # knot g - r
    np.testing.assert_allclose(-2.5 * np.log10(f[0, 1, 1] / f[0, 2, 1]), 0.05, atol=1e-12)  # knot r - z
    assert (f[:, :, 3] == 0).all() and (f[1, :, 1:] == 0).all()  # empty slots carry nothing


def _systems(n: int = 24):
    """Drawn systems of ``n`` fake galaxies (bright, clumpy sources, theta_E 1.2-2"), the
    rows make_arcs needs, their PSF kernels and their arcs."""
    from lensfinder.inject import make_arcs, psf_kernels
    from lensfinder.population import draw_parameters
    gal = pd.DataFrame({"galaxy_id": np.arange(n, dtype=np.int64), "shape_r": np.ones(n),
                        "shape_e1": np.zeros(n), "shape_e2": np.full(n, 0.1)})
    priors = Priors.from_dict({"theta_e": [1.2, 2.0], "frac_in_caustic": 1.0, "source_mag_r": [20.0, 21.0],
                               "knots_max": 3})
    p = {k: np.asarray(v, dtype=np.float64) for k, v in draw_parameters(priors, 5, "t", gal).items()}
    rows = pa.table({**{f"mw_transmission_{b}": np.full(n, 0.95) for b in "grz"},
                     **{f"psfsize_{b}": np.full(n, 1.2) for b in "grz"}})
    cfg = InjectConfig()
    kern = psf_kernels(rows, cfg)
    zero = np.zeros(n)
    arcs, mu = make_arcs(p, rows, zero, zero, kern, cfg)
    return p, rows, kern, arcs, mu, cfg


def test_a_redraw_solves_the_lens_equation_only_where_every_other_criterion_passes():
    """Redraws (``every=False``) skip the image solver for systems already failing another
    criterion: the same systems are recognisable, with the same images, as when every
    system is solved (first draws, whose failures are counted per criterion)."""
    from lensfinder.inject import assess
    p, rows, kern, arcs, mu, cfg = _systems(40)
    rows = rows.append_column("nobs_g", pa.array(np.full(40, 3))).append_column(
        "nobs_r", pa.array(np.full(40, 3))).append_column("nobs_z", pa.array(np.full(40, 3)))
    invvar = np.broadcast_to(np.geomspace(0.3, 3e3, 40)[:, None, None, None], arcs.shape)  # S/N from ~1 to ~100
    zero = np.zeros(40)
    every = assess(p, rows, zero, zero, arcs, mu, invvar, cfg, every=True)
    some = assess(p, rows, zero, zero, arcs, mu, invvar, cfg, every=False)
    assert 5 < every.ok.sum() < 35 and np.array_equal(every.ok, some.ok)
    solved = np.array([len(m) > 0 for m in some.image_mu])
    other = np.any([v for k, v in every.failed.items() if k != "multiple_images"], axis=0)
    assert np.array_equal(solved, ~other) and every.failed["arc_snr"].any()
    for i in np.flatnonzero(solved):
        np.testing.assert_array_equal(some.image_mu[i], every.image_mu[i])
    assert not some.failed["multiple_images"][~solved].any()


def _mean_radius(img: np.ndarray) -> np.ndarray:
    """(N,) flux-weighted mean distance from the stamp centre (arcsec) of (N, 64, 64) images."""
    yy, xx = np.mgrid[: img.shape[-1], : img.shape[-1]]
    r = np.hypot(xx - 32, yy - 32) * 0.262  # the lens sits on pixel (32, 32)
    return (img * r).sum(axis=(1, 2)) / img.sum(axis=(1, 2))


def test_unlensed_copies_carry_the_arcs_flux_colour_and_radius_but_are_not_lensed():
    """The control of a system: per band the arc's flux, its light at the images' distance
    from the lens; but not the arc's shape (the copies are the source itself, moved)."""
    from lensfinder.detectability import solve_images
    from lensfinder.inject import _lens_systems, unlensed_copies
    from lensfinder.seeding import row_keys
    p, rows, kern, arcs, mu, cfg = _systems()
    zero = np.zeros(len(mu))
    images = solve_images(_lens_systems(p, zero, zero))
    keys = row_keys(0, "test", np.arange(len(mu)))
    copies = unlensed_copies(p, rows, zero, zero, kern, images, arcs, keys, cfg)
    np.testing.assert_allclose(copies.sum(axis=(2, 3)), arcs.sum(axis=(2, 3)), rtol=0.01)
    ratio = _mean_radius(copies[:, 1]) / _mean_radius(arcs[:, 1])  # copies vary in size
    assert abs(np.median(ratio) - 1) < 0.05 and (np.abs(ratio - 1) < 0.25).all()
    # not the arc: the arcs of these theta_E >= 1.2" systems leave the centre dark, and so
    # do the copies, but the light is elsewhere in the stamp
    diff = np.abs(copies - arcs).sum(axis=(1, 2, 3)) / arcs.sum(axis=(1, 2, 3))
    assert (diff > 0.3).all()
    # a copy of a lone source without the lens is the source itself: one system, one image
    one = {k: v[:1].copy() for k, v in p.items()}
    single = [(np.array([1.5]), np.array([0.0]), np.array([4.0]))]  # at 1.5" from the lens
    c1 = unlensed_copies(one, rows.slice(0, 1), zero[:1], zero[:1], kern[:1], single, arcs[:1], keys[:1], cfg)
    np.testing.assert_allclose(c1.sum(axis=(2, 3)), arcs[:1].sum(axis=(2, 3)), rtol=0.01)
    yy, xx = np.mgrid[:64, :64]
    centroid = [(c1[0, 1] * (a - 32)).sum() / c1[0, 1].sum() * 0.262 for a in (xx, yy)]
    np.testing.assert_allclose(np.hypot(*centroid), 1.5, atol=0.05)  # the copy sits 1.5" out
    # reproducible from the keys, different for other keys
    np.testing.assert_array_equal(copies, unlensed_copies(p, rows, zero, zero, kern, images, arcs, keys, cfg))
    other = unlensed_copies(p, rows, zero, zero, kern, images, arcs, keys + np.uint64(1), cfg)
    assert not np.allclose(other, copies)


def test_unlensed_source_controls_are_recognisable_systems_whose_source_is_added_unlensed(mock_sky, manifests,
                                                                                         tmp_path):
    """Phase 4c on a manifest with unlensed-source controls: each is drawn (and redrawn)
    like a positive and its system is recognisable, but its stamp gets the copies, labelled
    0; the report counts them; other controls stay raw cutouts."""
    from lensfinder.population import UNLENSED_SOURCE
    reports, parts = _run(manifests[1]["unlensed"], mock_sky.coadd_dir, tmp_path, n_shards=1)
    d = pq.read_table(parts[0]).drop_columns(["stamp"]).to_pandas()
    unl, pos = d[d.population == UNLENSED_SOURCE], d[d.label == 1]
    assert (unl.label == 0).all() and len(unl) == reports[0]["n_unlensed_controls_written"] > 10
    c = InjectConfig().recognisable
    assert (unl.n_images >= c.min_images).all() and (unl.mu_total >= c.min_magnification).all()
    assert (unl.arc_snr >= c.min_arc_snr).all() and unl.resolved.isna().all()  # no lens: no "resolved"
    assert (unl.draw_attempt > 0).any()  # redrawn like positives
    # their added light has the arcs' brightness and colour distribution: ~25 of each on the
    # small sky, whose arc fluxes spread over a factor ~10, so compare the distributions
    # (a rank test) and their means, not two noisy medians
    from scipy.stats import mannwhitneyu
    for col in ("arc_flux_r", "arc_flux_g"):
        assert mannwhitneyu(unl[col], pos[col]).pvalue > 0.001, col
        assert 0.5 < unl[col].mean() / pos[col].mean() < 2.0, col
    brick = CoaddBrick(mock_sky.coadd_dir, SMALL_SKY.bricks[0])
    stamps = next(iter_row_groups(parts[0]))[1]
    on = (d.brickname == SMALL_SKY.bricks[0]).to_numpy()[: len(stamps)]
    raw = brick.cutouts(d.ra[: len(stamps)][on].to_numpy(), d.dec[: len(stamps)][on].to_numpy()).image
    kind = d.population[: len(stamps)][on].to_numpy()
    extra = (stamps[on] - raw).sum(axis=(2, 3))
    is_unl = kind == UNLENSED_SOURCE
    assert is_unl.any()
    np.testing.assert_allclose(extra[is_unl], d[["arc_flux_g", "arc_flux_r", "arc_flux_z"]][: len(stamps)][on][is_unl],
                               rtol=0.05, atol=0.05)
    plain = (d.label[: len(stamps)][on].to_numpy() == 0) & ~is_unl
    assert plain.any()
    np.testing.assert_array_equal(stamps[on][plain], raw[plain])


def test_lenses_without_a_redshift_are_skipped_and_counted(mock_sky, manifests):
    t = pq.read_table(manifests[1]["unpaired"])
    name = t["brickname"][0].as_py()
    rows = t.filter(pc.equal(t["brickname"], name)).to_pandas()
    brick = LocalCoadds(mock_sky.coadd_dir).brick(name)
    before = inject_brick(pa.Table.from_pandas(rows, schema=t.schema), brick, InjectConfig(), POPULATION["unpaired"])
    assert before[3]["skipped"]["no_lens_redshift"] == 0
    made = before[0].to_pandas()
    lost = rows.sample_id.isin(made.sample_id[made.label == 1].iloc[:3])  # three positives that were made
    rows.loc[lost, ["theta_e", "lens_sigma", "src_z"]] = np.nan  # no theta_E ...
    rows.loc[lost & (rows.index < rows.index[lost][2]), "z_lens"] = np.nan  # ... two for want of a photo-z
    kept, stamps, diag, counts = inject_brick(pa.Table.from_pandas(rows, schema=t.schema), brick, InjectConfig(),
                                              POPULATION["unpaired"])
    # the third had a redshift: named for what it lacks (issue 32: all three were "no_lens_redshift")
    assert counts["skipped"]["no_lens_redshift"] == 2 and counts["skipped"]["no_einstein_radius"] == 1
    assert not set(rows.sample_id[lost]) & set(kept["sample_id"].to_pylist())
    assert kept.num_rows == before[0].num_rows - 3


def test_never_recognisable_positives_are_skipped_and_counted(mock_sky, manifests, tmp_path):
    manifest = manifests[1]["unpaired"]
    impossible = InjectConfig().recognisable.__class__(min_arc_snr=1e9, max_attempts=2)
    reports, parts = _run(manifest, mock_sky.coadd_dir, tmp_path, n_shards=1, recognisable=impossible)
    r = reports[0]
    d = pq.read_table(parts[0], columns=["label"]).to_pandas()
    assert (d.label == 0).sum() > 0 and (d.label == 1).sum() == 0
    assert r["skipped"]["not_recognisable"] > 0 and r["n_written"] + r["n_skipped"] == r["n_rows"]
    assert r["redraws"] == r["skipped"]["not_recognisable"]  # one redraw each, then given up


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_same_config_gives_identical_stamps_whatever_the_sharding(mock_sky, manifests, tmp_path):
    m = manifests[1]["paired"]
    _, a = _run(m, mock_sky.coadd_dir, tmp_path / "a", n_shards=2)
    _, b = _run(m, mock_sky.coadd_dir, tmp_path / "b", n_shards=2)
    _, c = _run(m, mock_sky.coadd_dir, tmp_path / "c", n_shards=1)
    digest = lambda paths: hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)
    ta = pq.read_table(a).sort_by("sample_id")
    tc = pq.read_table(c).sort_by("sample_id")
    assert ta["sample_id"].equals(tc["sample_id"])
    np.testing.assert_array_equal(decode_stamps(ta["stamp"]), decode_stamps(tc["stamp"]))


def test_nan_and_zero_invvar_cutouts_are_skipped_and_counted(mock_sky, manifests, tmp_path):
    coadd = tmp_path / "coadd"
    shutil.copytree(mock_sky.coadd_dir, coadd)
    brick = SMALL_SKY.bricks[0]
    path = coadd_path(coadd, brick, "image", "r")
    with fits.open(path) as hdul:
        data, header = hdul[1].data.copy(), hdul[1].header.copy()
    data[:, :250] = np.nan  # half the brick has NaN pixels
    path.unlink()
    fits.PrimaryHDU(data, header).writeto(path)
    reports, _ = _run(manifests[1]["paired"], coadd, tmp_path, n_shards=1)
    assert reports[0]["skipped"]["nan_pixels"] > 10
    assert reports[0]["n_written"] + reports[0]["n_skipped"] == reports[0]["n_rows"]
    assert json.loads((tmp_path / "part-0.json").read_text())["skipped"]["nan_pixels"] > 10


def test_gallery_shows_typical_arcs_next_to_controls_and_the_injection_figure(mock_sky, manifests, tmp_path):
    """Half the gallery's positives sit at the median arc S/N, some near the 10th percentile:
    not only the brightest. The injection figure draws every positive's distributions."""
    _, parts = _run(manifests[1]["paired"], mock_sky.coadd_dir, tmp_path, n_shards=1)
    meta = pq.read_table(parts[0], columns=["label", "sample_id", "twin_sample_id", "mag_r", "arc_snr"]).to_pandas()
    pairs = pick_pairs(meta, 8)
    assert len(pairs) == 8 and [tag for *_, tag in pairs].count("S/N p50") == 4 and ("S/N p10" in [t for *_, t in pairs])
    snr = meta.loc[meta.label == 1, "arc_snr"]
    chosen = meta.loc[[i for i, _, tag in pairs if tag == "S/N p50"], "arc_snr"]
    assert chosen.max() < snr.quantile(0.9) and chosen.min() > snr.quantile(0.1)
    assert all(meta.label[i] == 1 and meta.label[j] == 0 for i, j, _ in pairs)
    n = write_gallery(parts, tmp_path / "gallery.png", n_pairs=4)
    assert n == 4
    import matplotlib.image as mpimg
    img = mpimg.imread(tmp_path / "gallery.png")
    assert img.shape[0] > 200 and img.shape[1] > 400 and img[..., :3].std() > 0.05
    assert write_injection_figure(parts, tmp_path / "injection.png") == int((meta.label == 1).sum())
    assert mpimg.imread(tmp_path / "injection.png")[..., :3].std() > 0.05


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_stamps_from_the_cutout_service_equal_local_stamps_to_the_resampling(mock_sky, manifests, unpaired_local,
                                                                            tmp_path, server):
    """Phase 4c with no local coadds: the imitation viewer serves the mock sky, Lanczos-3
    resampled onto grids centred on each galaxy (as the real viewer serves DR10). Each
    control's service stamp equals its local stamp shifted by the galaxy's sub-pixel
    offset: the target is on pixel (32, 32), bands in g, r, z order; stamps are marked
    resampled and the arcs are centred on pixel (32, 32) exactly."""
    from lensfinder.sky.cutout_service import CutoutService
    from lensfinder.sky.cutout_source import ServiceCutouts
    from viewer import FakeViewer, lanczos3
    FakeViewer.sky = (mock_sky.coadd_dir, SMALL_SKY.bricks)
    _, m = manifests
    service = ServiceCutouts(CutoutService(cache_dir=tmp_path / "cache", base_url=server + "cutout.fits",
                                           min_interval_s=0.0, max_concurrent=4))
    rep = inject_shard(m["unpaired"], service, 0, 1, tmp_path / "svc.parquet", tmp_path / "svc.json",
                       POPULATION["unpaired"])
    assert rep["cutouts_resampled"] and rep["n_written"] > 20
    local_parts = unpaired_local[1]
    svc = {int(s): (r, st) for t, stamps in iter_row_groups(tmp_path / "svc.parquet")
           for s, r, st in zip(t["sample_id"].to_numpy(), t.to_pylist(), stamps)}
    assert all(r["cutout_resampled"] for r, _ in svc.values())
    pos = [r for r, _ in svc.values() if r["label"] == 1]
    assert all(r["lens_x_pix"] == r["lens_y_pix"] == 32.0 for r in pos)
    brick = CoaddBrick(mock_sky.coadd_dir, SMALL_SKY.bricks[0])
    n = 0
    for t, stamps in iter_row_groups(local_parts[0]):
        for r, st in zip(t.to_pylist(), stamps):
            if r["label"] != 0 or r["brickname"] != SMALL_SKY.bricks[0] or r["sample_id"] not in svc:
                continue
            x, y = brick.world_to_pixel(r["ra"], r["dec"])
            dx, dy = x[0] - np.floor(x[0] + 0.5), y[0] - np.floor(y[0] + 0.5)
            yy, xx = np.mgrid[4:60, 4:60]
            shifted = lanczos3(st, (xx + dx).ravel(), (yy + dy).ravel()).reshape(3, 56, 56)
            got = svc[r["sample_id"]][1][:, 4:60, 4:60]
            np.testing.assert_allclose(got, shifted, atol=1e-3 * np.abs(st).max())  # measured: <= 3.7e-4
            n += 1
    assert n > 5
    assert json.loads((tmp_path / "svc.json").read_text())["skipped"]["service_error"] == 0


def _positive_stamps(path):
    t = pq.read_table(path)
    keep = t.filter(pc.equal(t["label"], 1)).sort_by("sample_id")
    return keep["sample_id"].to_numpy(), decode_stamps(keep["stamp"])


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_pixel_psf_from_the_service_equals_the_analytic_moffat(mock_sky, manifests, unpaired_local, tmp_path, server):
    """``psf.kind: pixel`` through the cutout-service client: the imitation viewer's
    coadd-psf answers the mock sky's own Moffat (63x63, float32), so the stamps equal those
    blurred with the analytic Moffat of PSFSIZE."""
    from lensfinder.psf import PsfConfig
    from lensfinder.sky.cutout_service import CutoutService
    from lensfinder.sky.psf_images import ServicePsfImages
    from viewer import FakeViewer
    FakeViewer.sky = (mock_sky.coadd_dir, SMALL_SKY.bricks)
    m = manifests[1]["unpaired"]
    images = ServicePsfImages(CutoutService(cache_dir=tmp_path / "cache", base_url=server + "cutout.fits",
                                            psf_url=server + "coadd-psf/", min_interval_s=0.0))
    rep = inject_shard(m, LocalCoadds(mock_sky.coadd_dir), 0, 1, tmp_path / "pix.parquet", tmp_path / "pix.json",
                       POPULATION["unpaired"], InjectConfig(psf=PsfConfig(kind="pixel")), images)
    ids_p, st_p = _positive_stamps(tmp_path / "pix.parquet")
    ids_m, st_m = _positive_stamps(unpaired_local[1][0])
    assert rep["skipped"]["no_psf"] == rep["skipped"]["bad_psf"] == 0 and len(ids_p) > 20
    np.testing.assert_array_equal(ids_p, ids_m)
    np.testing.assert_allclose(st_p, st_m, atol=1e-5 * np.abs(st_m).max())
    assert any(q.get("bands") == "grz" for q in FakeViewer.requests)  # PSFs were really fetched


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_pixel_psf_from_a_directory_missing_and_bad_files_are_counted(mock_sky, manifests, unpaired_local, tmp_path,
                                                                     monkeypatch):
    """PSF files in a local directory (viewer coadd-psf format, PSF_FILE names). One positive
    has no file and one a corrupt file: both are skipped and counted (no_psf, bad_psf); every
    other stamp equals the analytic-Moffat one."""
    from lensfinder.psf import PsfConfig
    from lensfinder.sky.psf_images import PSF_FILE, LocalPsfImages
    from viewer import FakeViewer, viewer_coadd_psf
    monkeypatch.setattr(FakeViewer, "sky", (mock_sky.coadd_dir, SMALL_SKY.bricks))  # viewer_coadd_psf, no server
    m = manifests[1]["unpaired"]
    ids_m, st_m = _positive_stamps(unpaired_local[1][0])
    missing, corrupt = int(ids_m[0]), int(ids_m[1])
    pos = pq.read_table(m).to_pandas().query("label == 1")
    psf_dir = tmp_path / "psfs"
    psf_dir.mkdir()
    for sid, ra, dec in zip(pos.sample_id, pos.ra, pos.dec):
        if sid != missing:
            payload = b"SIMPLE  = garbage" if sid == corrupt else viewer_coadd_psf({"ra": ra, "dec": dec, "bands": "grz"})
            (psf_dir / PSF_FILE.format(ra=ra, dec=dec)).write_bytes(payload)
    rep = inject_shard(m, LocalCoadds(mock_sky.coadd_dir), 0, 1, tmp_path / "pix.parquet", tmp_path / "pix.json",
                       POPULATION["unpaired"], InjectConfig(psf=PsfConfig(kind="pixel", pixel_dir=str(psf_dir))),
                       LocalPsfImages(psf_dir))
    assert rep["skipped"]["no_psf"] == 1 and rep["skipped"]["bad_psf"] == 1
    assert rep["n_written"] + rep["n_skipped"] == rep["n_rows"]
    ids_p, st_p = _positive_stamps(tmp_path / "pix.parquet")
    others = ~np.isin(ids_m, [missing, corrupt])
    np.testing.assert_array_equal(ids_p, ids_m[others])
    np.testing.assert_allclose(st_p, st_m[others], atol=1e-5 * np.abs(st_m).max())


def test_a_typo_in_the_service_layer_stops_phase_4c_instead_of_skipping_every_stamp(mock_sky, manifests, tmp_path,
                                                                                     server):
    """Before, a layer the viewer does not know made every stamp a 'service_error' skip and
    the shard ended normally with n_written 0; now the first response stops it, naming the
    URL and the viewer's answer."""
    from lensfinder.sky.cutout_service import CutoutService, PermanentServiceError
    from lensfinder.sky.cutout_source import ServiceCutouts
    _, m = manifests
    service = ServiceCutouts(CutoutService(cache_dir=tmp_path / "cache", base_url=server + "cutout.fits",
                                           layer="ls-dr10-typo", min_interval_s=0.0))
    with pytest.raises(PermanentServiceError, match=r"cutout\.fits\?.*layer=ls-dr10-typo.*'no such layer'"):
        inject_shard(m["unpaired"], service, 0, 1, tmp_path / "svc.parquet", tmp_path / "svc.json",
                     POPULATION["unpaired"])


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_the_render_batch_size_cannot_change_a_stamp(mock_sky, manifests, tmp_path):
    """inject.batch is a memory setting: it is not a param of the rules (issue 32), because
    the stamps are byte-identical whatever it is."""
    m = manifests[1]["unlensed"]  # positives and unlensed-source controls: both batched paths
    _, a = _run(m, mock_sky.coadd_dir, tmp_path / "a", n_shards=1, batch=256)
    _, b = _run(m, mock_sky.coadd_dir, tmp_path / "b", n_shards=1, batch=5)
    ta = pq.read_table(a[0])
    assert ta.num_rows > 10 and pc.sum(ta["label"]).as_py() > 5
    assert (ta["population"].to_numpy(zero_copy_only=False) == "unlensed_source").sum() > 5
    assert a[0].read_bytes() == b[0].read_bytes()
