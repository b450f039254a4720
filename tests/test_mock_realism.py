"""The realism measures of benchmarks/mock_realism.py, on hand-made catalogues and on the
small test sky."""

import numpy as np
import pandas as pd

from lensfinder import mock_realism as mr
from lensfinder.select import gather_parent, select_sweep
from lensfinder.sky.false_positives import POPULATIONS

from conftest import SMALL_SKY


def _sweeps(ra, dec, r, z):
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    return mr.Sweeps(ra, dec, {"g": np.asarray(r) + 1.0, "r": np.asarray(r, float), "z": np.asarray(z, float)},
                     np.full(ra.size, 100.0))


def test_neighbours_and_brightest_by_hand():
    """An LRG (r 21, z 19.5) with catalogued objects at 3" (r 20.5, z 20.0), 6" (r 22.5) and
    9" (outside 8.4" but inside the stamp's corner box): one neighbour brighter than r = 22,
    one fainter; in r a brighter object shares its stamp, in z none does."""
    a = 1 / 3600
    sweeps = _sweeps([10.0, 10.0 + 3 * a, 10.0, 10.0 + 6 * a], [0.0, 0.0, 6 * a, 6 * a],
                     [21.0, 20.5, 22.5, 19.0], [19.5, 20.0, 21.0, 19.8])
    parents = pd.DataFrame({"ra": [10.0], "dec": [0.0], "mag_r": [21.0], "mag_z": [19.5]})
    out = mr.neighbours(parents, sweeps)
    assert out["per_lrg_by_r"] == {"r<20": 0.0, "20-21": 1.0, "21-22": 0.0, "22-23": 1.0, "r>23 or no r flux": 0.0}
    assert out["brighter_than_r22_per_lrg"] == 1.0
    assert out["lrg_brightest_in_stamp_fraction"] == {"r": 0.0, "z": 1.0}


def test_counts_density_and_gallery_on_the_small_sky(mock_sky, tmp_path):
    parts, sums = [], []
    for i, sweep in enumerate(mock_sky.sweeps):
        parts.append(tmp_path / f"{i}.parquet")
        sums.append(select_sweep(sweep, parts[-1], photoz_path=mock_sky.photoz[i]))
    gather_parent(parts, sums, tmp_path / "parent.parquet", tmp_path / "summary.json")
    parents = mr.read_parents(tmp_path / "parent.parquet")
    area = len(SMALL_SKY.bricks) * SMALL_SKY.brick_area_deg2
    sweeps = mr.Sweeps.read(mock_sky.sweeps)
    counts = mr.number_counts(sweeps, np.array([18.2, 19.7]), area)
    assert 23.0 < counts["detection_limit_r"] < 25.0 and counts["n_sweep_objects"] == sum(s["n_rows"] for s in sums)
    stars = dict(zip(counts["bins_r"], counts["stars_per_deg2_per_mag"]))
    assert stars[18.0] == stars[19.5] == round(1 / area / 0.5, 1) and stars[19.0] == 0
    props = mr.lrg_properties(parents, mr.reference_lrg_properties(n=20000), area)
    assert props["parent_density_per_deg2"] == round(len(parents) / area, 1)
    assert abs(props["properties"]["mag_z"]["mock"][1] - props["properties"]["mag_z"]["desi_model"][1]) < 0.5
    rows = mr.gallery_rows(parents, n_random=10, per_population=2)
    assert len(rows) == 10 + 2 * len(POPULATIONS)
    images = mr.gallery_stamps(rows.head(4), mock_sky.coadd_dir)
    assert len(images) == 4 and images[0][0].shape == (64, 64, 3)
    rates = mr.population_rates(parents)
    assert set(rates) == set(POPULATIONS) and all(0 <= v["mock"] <= 1 for v in rates.values())
