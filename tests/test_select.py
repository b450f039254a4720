import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from astropy.table import Table
from lensfinder.select import (CRITERIA, PARENT_SCHEMA, PHOTOZ_COLUMNS, gather_parent, galaxy_id, is_lrg, lens_redshift,
                               lrg_criteria, select_sweep)
from lensfinder.sky.columns import MASKBITS
from lensfinder.sky.sweeps import SweepError, read_sweep


def adversarial_table(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Sweep-like columns designed to sit on and around every LRG cut, with edge cases:
    zero / negative / NaN fluxes, zero ivar, Gaia G == 0 / == 18, nobs 0, every mask bit."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    z = rng.uniform(17.0, 22.5, n)
    rz = rng.uniform(0.0, 2.5, n)
    gr = rng.uniform(0.0, 2.5, n)
    zw1 = rng.uniform(-1.0, 2.5, n)
    flux = lambda m: (10 ** (-0.4 * (m - 22.5))).astype(f32)  # noqa: E731
    cols = {
        "FLUX_Z": flux(z), "FLUX_R": flux(z + rz), "FLUX_G": flux(z + rz + gr), "FLUX_W1": flux(z - zw1),
        "FLUX_IVAR_R": rng.uniform(0, 100, n).astype(f32), "FLUX_IVAR_Z": rng.uniform(0, 100, n).astype(f32),
        "FLUX_IVAR_W1": rng.uniform(0, 5, n).astype(f32),
        "FIBERFLUX_Z": (flux(z) * rng.uniform(0.1, 0.9, n)).astype(f32),
        "NOBS_G": rng.integers(0, 5, n).astype(np.int16), "NOBS_R": rng.integers(0, 5, n).astype(np.int16),
        "NOBS_Z": rng.integers(0, 5, n).astype(np.int16),
        "GAIA_PHOT_G_MEAN_MAG": np.where(rng.random(n) < 0.6, 0, rng.uniform(15, 21, n)).astype(f32),
        "MASKBITS": np.where(rng.random(n) < 0.5, 0, 1 << rng.integers(0, 16, n)).astype(np.int32),
    }
    for b in ("G", "R", "Z", "W1"):
        cols[f"MW_TRANSMISSION_{b}"] = rng.uniform(0.7, 1.0, n).astype(f32)
    cols["FIBERTOTFLUX_Z"] = (cols["FIBERFLUX_Z"] * rng.uniform(1, 1.5, n)).astype(f32)
    # edge cases, each on its own slice of rows
    k = n // 20
    cols["FLUX_R"][:k] = 0
    cols["FLUX_Z"][k:2 * k] *= -1
    cols["FLUX_IVAR_Z"][2 * k:3 * k] = 0
    cols["FLUX_W1"][3 * k:4 * k] = 0
    cols["FLUX_IVAR_W1"][4 * k:5 * k] = 0
    cols["GAIA_PHOT_G_MEAN_MAG"][5 * k:6 * k] = 18.0
    cols["FIBERFLUX_Z"][6 * k:7 * k] = 0
    cols["FIBERTOTFLUX_Z"][7 * k:8 * k] = f32(100.0)  # exactly zfibertot mag 17.5
    cols["FLUX_G"][8 * k:9 * k] = np.nan
    cols["FLUX_W1"][9 * k:10 * k] = np.nan
    cols["MASKBITS"][10 * k:11 * k] = (1 << np.arange(16)).repeat(k // 16 + 1)[:k]
    cols["FLUX_G"][11 * k:12 * k] = -1.0
    cols["NOBS_R"][12 * k:13 * k] = 0
    return cols


@pytest.fixture(scope="module")
def desitarget_cuts():
    return pytest.importorskip("desitarget.cuts")


def desitarget_is_lrg(cuts, cols: dict[str, np.ndarray], south: bool = True) -> np.ndarray:
    """desitarget's isLRG(south=...) on sweep columns, through its own de-reddening path
    (as set_target_bits uses it)."""
    n = len(cols["FLUX_R"])
    rec = np.zeros(n, dtype=[(k, np.asarray(cols[k]).dtype) for k in ADVERSARIAL_COLUMNS]
                   + [("FLUX_W2", "f4"), ("MW_TRANSMISSION_W2", "f4"), ("FIBERFLUX_G", "f4"),
                      ("FIBERFLUX_R", "f4")])
    for k in ADVERSARIAL_COLUMNS:
        rec[k] = cols[k]
    rec["MW_TRANSMISSION_W2"] = 1
    ext = cuts.unextinct_fluxes(rec)
    return cuts.isLRG(
        gflux=ext["GFLUX"], rflux=ext["RFLUX"], zflux=ext["ZFLUX"], w1flux=ext["W1FLUX"],
        zfiberflux=ext["ZFIBERFLUX"], rfluxivar=cols["FLUX_IVAR_R"], zfluxivar=cols["FLUX_IVAR_Z"],
        w1fluxivar=cols["FLUX_IVAR_W1"], gaiagmag=cols["GAIA_PHOT_G_MEAN_MAG"], gnobs=cols["NOBS_G"],
        rnobs=cols["NOBS_R"], znobs=cols["NOBS_Z"], maskbits=cols["MASKBITS"],
        zfibertotflux=cols["FIBERTOTFLUX_Z"], south=south,
    )


ADVERSARIAL_COLUMNS = list(adversarial_table(1))


def test_identical_to_desitarget_isLRG_south(desitarget_cuts):
    cols = adversarial_table(12_000)
    ours = is_lrg(cols)
    assert 200 < ours.sum() < 11_000  # the table exercises both outcomes
    np.testing.assert_array_equal(ours, desitarget_is_lrg(desitarget_cuts, cols))


def test_north_rows_get_desitargets_north_cuts(desitarget_cuts):
    """Issue 28: BASS/MzLS rows (a northern RELEASE, e.g. DR9's 9011) are selected with
    desitarget's isLRG(south=False), south rows in the same chunk with south=True."""
    from lensfinder.select import is_south
    cols = adversarial_table(12_000, seed=1)
    north = np.arange(12_000) % 3 == 0
    cols["RELEASE"] = np.where(north, 9011, 10000).astype(np.int16)
    ours = is_lrg(cols)
    expected = np.where(north, desitarget_is_lrg(desitarget_cuts, cols, south=False),
                        desitarget_is_lrg(desitarget_cuts, cols, south=True))
    np.testing.assert_array_equal(ours, expected)
    # the cuts differ on these rows: south cuts on north rows would select others
    assert (desitarget_is_lrg(desitarget_cuts, cols, south=True)[north] != expected[north]).any()
    assert is_south(np.array([10000, 9010, 9011])).tolist() == [True, True, False]
    with pytest.raises(ValueError, match=r"RELEASE \[1234\] is not a known"):
        is_south(np.array([1234]))


def test_identical_to_desitarget_on_the_mock_sweeps(desitarget_cuts, mock_sky):
    """Phase 3 on the mock sky's own sweep files selects exactly what desitarget selects."""
    for sweep in mock_sky.sweeps:
        t = read_sweep(sweep, ADVERSARIAL_COLUMNS)
        cols = {k: t[k].to_numpy() for k in ADVERSARIAL_COLUMNS}
        ours = is_lrg(cols)
        assert 10 < ours.sum() < len(ours) / 2
        np.testing.assert_array_equal(ours, desitarget_is_lrg(desitarget_cuts, cols))


def test_every_criterion_fires_on_the_adversarial_table():
    crit = lrg_criteria(adversarial_table(12_000))
    assert list(crit) == list(CRITERIA)
    assert all((~ok).any() and ok.any() for ok in crit.values())


@pytest.mark.parametrize("bit", range(16))
def test_only_default_maskbits_veto(bit):
    cols = adversarial_table(2_000, seed=3)
    cols["MASKBITS"][:] = 1 << bit
    vetoed = not lrg_criteria(cols)["maskbits"].any()
    assert vetoed == (bit in (MASKBITS["BRIGHT"], MASKBITS["GALAXY"], MASKBITS["CLUSTER"]))


def test_galaxy_id_packs_targetid_layout():
    gid = galaxy_id([10000, 10000], [5, 5], [0, 1])
    assert gid[1] - gid[0] == 1 and gid[0] >> 42 == 10000 and (gid[0] >> 22) & (2**20 - 1) == 5
    with pytest.raises(ValueError):
        galaxy_id([1], [1], [1 << 22])


def test_select_sweep_streams_chunks_and_counts(mock_sky, tmp_path):
    sweep, pz = mock_sky.sweeps[0], mock_sky.photoz[0]
    s1 = select_sweep(sweep, tmp_path / "a.parquet", tmp_path / "a.json", chunk_rows=17, photoz_path=pz)
    s2 = select_sweep(sweep, tmp_path / "b.parquet", chunk_rows=1_000_000, photoz_path=pz)
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.to_pandas().equals(b.to_pandas()) and a.schema.equals(PARENT_SCHEMA)  # NaN z_spec: pandas equality
    assert s1 == json.loads((tmp_path / "a.json").read_text())
    assert {k: v for k, v in s1.items()} == s2
    # the mock sky is DR10 DECaLS: every row of the southern system, counted as such
    assert s1["photometric_system"] == {"S": {"n_rows": s1["n_rows"], "n_selected": s1["n_selected"]},
                                        "N": {"n_rows": 0, "n_selected": 0}}
    # cascade ends at the selection; per-criterion counts match a direct evaluation
    raw = read_sweep(sweep)
    cols = {c: raw[c].to_numpy(zero_copy_only=False) for c in raw.column_names}
    crit = lrg_criteria(cols)
    assert s1["cascade"]["sliding"] == s1["n_selected"] == a.num_rows == int(is_lrg(cols).sum())
    assert all(s1["criteria"][k]["n_fail"] == int((~v).sum()) for k, v in crit.items())
    assert s1["n_rows"] == raw.num_rows
    assert len(set(a["galaxy_id"].to_pylist())) == a.num_rows
    # extinction-corrected flux and magnitudes
    sel = is_lrg(cols)
    np.testing.assert_array_equal(a["flux_r"].to_numpy(), (cols["FLUX_R"] / cols["MW_TRANSMISSION_R"])[sel])
    np.testing.assert_allclose(a["mag_r"].to_numpy(), 22.5 - 2.5 * np.log10(a["flux_r"].to_numpy()), rtol=1e-6)
    # redshifts: the photo-z file's row for each selected row; -99 fills become NaN
    zp = read_sweep(pz, ["Z_PHOT_MEDIAN"])["Z_PHOT_MEDIAN"].to_numpy()[sel]
    np.testing.assert_array_equal(a["z_phot_median"].to_numpy(), np.where(zp >= 0, zp, np.nan).astype(np.float32))
    np.testing.assert_array_equal(a["z_lens"].to_numpy(), a["z_phot_median"].to_numpy())  # the mock has no spectra
    assert s1["lens_redshift"] == {"spec": 0, "photo": int(np.isfinite(zp).sum() - (zp < 0).sum()),
                                   "none": int((zp < 0).sum())}


def test_lens_redshift_prefers_spectra_and_drops_fills():
    z = lens_redshift([0.45, -99.0, -99.0, 0.0], [0.5, 0.61, -99.0, 0.7])
    np.testing.assert_array_equal(z, np.array([0.45, 0.61, np.nan, 0.7], np.float32))


def test_photoz_file_must_be_row_matched(mock_sky, tmp_path):
    """A photo-z sweep of another sweep, or cut short, is an error naming both files and the row."""
    sweep = mock_sky.sweeps[0]
    t = read_sweep(mock_sky.photoz[0], list(PHOTOZ_COLUMNS))
    shuffled = tmp_path / "shuffled-pz.fits"  # the right rows in another order
    Table({c: t[c].to_numpy()[::-1] for c in PHOTOZ_COLUMNS}).write(shuffled)
    with pytest.raises(SweepError, match=r"-pz\.fits: not row-matched to .*sweep-.*: row 0 has"):
        select_sweep(sweep, tmp_path / "a.parquet", photoz_path=shuffled)
    short = tmp_path / "short-pz.fits"
    Table({c: t[c].to_numpy()[:-3] for c in PHOTOZ_COLUMNS}).write(short)
    with pytest.raises(SweepError, match=r"short-pz\.fits: not row-matched .* it ends before sweep row"):
        select_sweep(sweep, tmp_path / "b.parquet", photoz_path=short)
    assert not (tmp_path / "a.parquet").exists() and not (tmp_path / "b.parquet").exists()


def test_gather_concatenates_and_sums(mock_sky, tmp_path):
    parts, sums = [], []
    for i, sweep in enumerate(mock_sky.sweeps):
        parts.append(tmp_path / f"{i}.parquet")
        sums.append(select_sweep(sweep, parts[-1], chunk_rows=50))
    total = gather_parent(parts, sums, tmp_path / "parent.parquet", tmp_path / "summary.json")
    parent = pq.read_table(tmp_path / "parent.parquet")
    assert parent.num_rows == total["n_selected"] == sum(s["n_selected"] for s in sums) > 0
    assert sorted(total["per_sweep"]) == sorted(s.name for s in mock_sky.sweeps)
    assert json.loads((tmp_path / "summary.json").read_text())["n_rows"] == sum(s["n_rows"] for s in sums)
    assert set(parent["sweep"].to_pylist()) == {s.name for s in mock_sky.sweeps}
