from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from lensfinder.training.data import LoaderConfig, StampStream, dihedral
from lensfinder.stamps import StampFormatError

from stampdata import write_stamp_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_stamp_files(tmp_path_factory.mktemp("data"), n_files=3, groups=4, rows=20)


def _train_ids(paths):
    t = pq.read_table(paths, columns=["sample_id", "split"]).to_pandas()
    return sorted(t.loc[t.split == "train", "sample_id"])


def _epoch_ids(paths, world, workers, legacy=False, epoch=0, fraction=1.0):
    cfg = LoaderConfig(batch_size=7, num_workers=workers, legacy_sharding=legacy, augment=False,
                       train_fraction=fraction)
    ids = []
    for rank in range(world):
        ds = StampStream(paths, "train", cfg, seed=3, train=True, rank=rank, world_size=world)
        ds.set_epoch(epoch)
        for b in DataLoader(ds, batch_size=None, num_workers=workers):
            ids += b["sample_id"].tolist()
    return ids


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("workers", [0, 1, 3, 8])
def test_every_training_sample_exactly_once_per_epoch(files, world, workers):
    assert sorted(_epoch_ids(files, world, workers)) == _train_ids(files)


@pytest.mark.parametrize("world, workers", [(1, 3), (2, 8)])
def test_legacy_sharding_reproduces_the_gen2_duplication(files, world, workers):
    counts = Counter(_epoch_ids(files, world, workers, legacy=True))
    assert set(counts) == set(_train_ids(files))
    assert set(counts.values()) == {workers}  # each sample num_workers times per epoch


def test_a_train_fraction_reads_nested_subsets_of_the_training_split_only(files):
    """Learning curves: train_fraction f reads ~f of the training rows, each exactly once per
    epoch, whatever the workers; a smaller fraction's rows are a subset of a larger one's;
    the counts the loop records (n_rows, n_positives) are those of the rows read, and the
    validation split is read whole."""
    every = set(_train_ids(files))
    quarter, half = (set(_epoch_ids(files, 1, w, fraction=f)) for w, f in ((0, 0.25), (3, 0.5)))
    assert quarter < half < every
    assert abs(len(quarter) / len(every) - 0.25) < 0.12 and abs(len(half) / len(every) - 0.5) < 0.15
    assert sorted(_epoch_ids(files, 2, 3, fraction=0.25)) == sorted(quarter)  # once each, any sharding
    cfg = LoaderConfig(train_fraction=0.25)
    ds = StampStream(files, "train", cfg, seed=3, train=True)
    t = pq.read_table(files, columns=["sample_id", "label"]).to_pandas().set_index("sample_id")
    assert ds.n_rows() == len(quarter) and ds.n_positives() == int(t.loc[sorted(quarter), "label"].sum())
    val = StampStream(files, "val", cfg, seed=3, train=False)
    assert val.n_rows() == int((pq.read_table(files, columns=["split"]).to_pandas().split == "val").sum())
    with pytest.raises(ValueError, match="train_fraction"):
        LoaderConfig.from_dict({"train_fraction": 0.0})


def test_order_changes_with_epoch_and_is_reproducible(files):
    a, b, c = (_epoch_ids(files, 1, 0, epoch=e) for e in (0, 0, 1))
    assert a == b and a != c and sorted(a) == sorted(c)


def test_nan_rows_are_counted_and_dropped(tmp_path):
    paths = write_stamp_files(tmp_path, n_files=1, groups=2, rows=30, nan_rows=(0, 1, 2, 40))
    t = pq.read_table(paths, columns=["sample_id", "split"]).to_pandas()
    nan_val = t[t.sample_id.isin([0, 1, 2, 40])]
    ds = StampStream(paths, "val", LoaderConfig(batch_size=8, augment=False), 0, train=False)
    batches = list(DataLoader(ds, batch_size=None))
    assert sum(b["n_skipped"] for b in batches) == (nan_val.split == "val").sum()
    assert all(torch.isfinite(b["x"]).all() for b in batches)


def test_wrong_stamp_type_names_file_and_row_group(tmp_path):
    paths = write_stamp_files(tmp_path, n_files=1, groups=1, rows=5, bad_type=True)
    ds = StampStream(paths, "train", LoaderConfig(), 0, train=True)
    with pytest.raises(StampFormatError, match=r"part-1-of-1\.parquet: row group 0: stamp column has type"):
        list(DataLoader(ds, batch_size=None))


def test_metadata_and_augmentation(files):
    ds = StampStream(files, "train", LoaderConfig(batch_size=4, metadata=True), 0, train=True)
    b = next(iter(DataLoader(ds, batch_size=None)))
    assert b["meta"].shape == (len(b["y"]), 6) and b["x"].shape[1:] == (3, 64, 64)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    for k in range(8):
        y = dihedral(x, np.array([k, k]))
        assert torch.equal(torch.sort(y.flatten()).values, torch.sort(x.flatten()).values)
    assert len({dihedral(x, np.array([k, k]))[0, 0].flatten().tolist().__str__() for k in range(8)}) == 8


def test_null_stamp_row_is_a_clear_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lensfinder.stamps import STAMP_TYPE, encode_stamps
    path = tmp_path / "stamps/part-1-of-1.parquet"
    path.parent.mkdir()
    good = encode_stamps(np.zeros((2, 3, 64, 64), np.float32))
    stamp = pa.array([good[0].as_py(), None], type=STAMP_TYPE)
    pq.write_table(pa.table({"sample_id": [1, 2], "label": [0, 1], "split": ["train", "train"], "stamp": stamp}), path)
    ds = StampStream([path], "train", LoaderConfig(), 0, train=True)
    with pytest.raises(StampFormatError, match=r"part-1-of-1\.parquet: row group 0: stamp column has 1 null rows"):
        list(DataLoader(ds, batch_size=None))


@pytest.mark.parametrize("world, workers", [(1, 0), (1, 3), (2, 2)])
def test_batches_are_full_across_row_groups(files, world, workers):
    # row groups hold ~7 training rows each here: batches of 16 must span several of them
    cfg = LoaderConfig(batch_size=16, num_workers=workers, augment=False)
    for rank in range(world):
        ds = StampStream(files, "train", cfg, seed=3, train=True, rank=rank, world_size=world)
        sizes = [len(b["y"]) for b in DataLoader(ds, batch_size=None, num_workers=workers)]
        assert len(sizes) == ds.n_batches(rank, workers)
        assert sum(s < 16 for s in sizes) <= max(workers, 1)  # one short batch per worker at most
        assert max(sizes) == 16
