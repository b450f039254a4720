"""Phase 5 input: streaming stamps from Parquet row groups into training batches.

Sharding: the unit of work is one Parquet row group. Each epoch the units are permuted
from (seed, epoch), then dealt out over every (DDP rank x DataLoader worker) pair:
global worker ``g = rank * num_workers + worker`` takes ``units[g::world * num_workers]``.
Every sample is therefore read exactly once per epoch across all ranks and workers
(tests count the ids). ``legacy_sharding`` reproduces gen2's bug -- ``units[rank::world]``
in *every* worker -- which reads each sample ``num_workers`` times per epoch.

Batches are built inside the dataset (vectorised decode, normalisation and augmentation
of a whole row group), so the DataLoader runs with ``batch_size=None``. Rows left over at
the end of a row group are carried into the next one of the same (rank, worker), so every
batch is full but each worker's last: row groups often hold few rows of a split, and small
batches train far below a CPU's throughput (and with noisier batch-norm statistics). Rows
with non-finite pixels are dropped and counted in each batch's ``n_skipped``.
"""

from __future__ import annotations

import signal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lensfinder import seeding
from lensfinder.stamps import StampFormatError, decode_stamps, open_stamps, read_row_group
from lensfinder.training.config import LoaderConfig

META_COLUMNS = ("psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z")


def row_group_units(paths) -> list[tuple[str, int, int]]:
    """(path, row group index, rows) of every row group of the stamp files, sorted."""
    units = []
    for p in sorted(str(p) for p in paths):
        md = open_stamps(p).metadata
        units += [(p, i, md.row_group(i).num_rows) for i in range(md.num_row_groups)]
    return units


def normalise(x: np.ndarray, cfg: LoaderConfig) -> np.ndarray:
    """(N, 3, H, W) nanomaggies -> network input. ``asinh``: asinh(x / s_band), linear
    below ~s_band (about twice the pixel noise) and logarithmic for bright cores."""
    if cfg.normalize == "none":
        return x
    if cfg.normalize != "asinh":
        raise ValueError(f"unknown normalize {cfg.normalize!r}")
    s = np.array([cfg.asinh_scale[b] for b in "grz"], dtype=np.float32)[None, :, None, None]
    return np.arcsinh(x / s)


def dihedral(x: torch.Tensor, k: np.ndarray) -> torch.Tensor:
    """Apply one of the 8 flips/rotations of the square, ``k[i]`` in 0..7, to x[i]."""
    out = x.clone()
    for code in range(1, 8):
        idx = np.flatnonzero(k == code)
        if idx.size == 0:
            continue
        t = torch.rot90(x[idx], code % 4, dims=(2, 3))
        out[idx] = torch.flip(t, dims=(3,)) if code >= 4 else t
    return out


def metadata_features(table) -> np.ndarray:
    """(N, 6) float32: PSF FWHM (arcsec, centred on 1.3) and log10 PSF depth (centred on
    2.5) in g, r, z, scaled to order unity."""
    size = np.stack([table[c].to_numpy() for c in META_COLUMNS[:3]], axis=1).astype(np.float32)
    depth = np.stack([table[c].to_numpy() for c in META_COLUMNS[3:]], axis=1).astype(np.float32)
    return np.concatenate([(size - 1.3) / 0.2, (np.log10(np.maximum(depth, 1e-3)) - 2.5) / 0.5], axis=1)


class StampStream(IterableDataset):
    """Batches of one split of a dataset's stamp files.

    Yields dicts: ``x`` (B, 3, 64, 64) float32, ``y`` (B,) float32 labels, ``sample_id``
    (B,) int64, ``meta`` (B, 6) float32 when ``cfg.metadata``, ``n_skipped`` int.
    Call :meth:`set_epoch` before each epoch (it changes the order and augmentation).
    """

    def __init__(self, paths, split: str, cfg: LoaderConfig, seed: int, train: bool,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__()
        self.units = row_group_units(paths)
        self.split, self.cfg, self.seed, self.train = split, cfg, seed, train
        if rank is None:
            dist = torch.distributed
            rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _file(self, path: str):
        """``path`` opened once per process: opening a stamp file (reading its footer) costs
        ~6 ms, once per row group it was ~17% of scoring the test bench."""
        files = self.__dict__.setdefault("_open_files", {})
        if path not in files:
            files[path] = open_stamps(path)
        return files[path]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_open_files", None)  # a DataLoader worker started by spawn opens its own
        return state

    def _subset(self, sample_id: np.ndarray) -> np.ndarray:
        """(N,) bool: the rows read -- all, but for training with ``train_fraction`` < 1 a
        uniform draw per sample_id below it. The draw ignores the run's seed, so a smaller
        fraction trains on a subset of a larger one's rows (a learning curve's points nest)."""
        if not self.train or self.cfg.train_fraction >= 1:
            return np.ones(len(sample_id), bool)
        return seeding.uniform(seeding.row_keys(0, "train-subset", sample_id)) < self.cfg.train_fraction

    def _read(self, table) -> np.ndarray:
        """(N,) bool: the rows of ``table`` (split, sample_id columns) this stream reads."""
        return np.asarray(pc.equal(table["split"], self.split)) & self._subset(table["sample_id"].to_numpy())

    def _rows_in_split(self) -> dict:
        if not hasattr(self, "_split_rows"):
            self._split_rows, self._split_pos = {}, {}
            for path, rg, _ in self.units:
                t = read_row_group(self._file(path), path, rg, ["split", "label", "sample_id"])
                read = self._read(t)
                self._split_rows[(path, rg)] = int(read.sum())
                self._split_pos[(path, rg)] = int((read & (t["label"].to_numpy() == 1)).sum())
        return self._split_rows

    def n_rows(self) -> int:
        """Rows of this split read over all stamp files (metadata columns only)."""
        return sum(self._rows_in_split().values())

    def n_positives(self) -> int:
        """Positives (label 1) among them."""
        self._rows_in_split()
        return sum(self._split_pos.values())

    def n_batches(self, rank: int, num_workers: int) -> int:
        """Batches that ``rank`` yields this epoch (over all its workers); from metadata."""
        rows = self._rows_in_split()
        saved = self.rank
        self.rank = rank
        try:
            per_worker = [sum(rows[(p, rg)] for p, rg, _ in self.my_units(w, num_workers))
                          for w in range(max(num_workers, 1))]
        finally:
            self.rank = saved
        return sum(-(-n // self.cfg.batch_size) for n in per_worker)

    def my_units(self, worker: int, num_workers: int) -> list[tuple[str, int, int]]:
        """The row groups this (rank, worker) reads this epoch."""
        units = list(self.units)
        if self.train:
            keys = seeding.row_keys(self.seed, "unit-order", self.epoch, np.arange(len(units), dtype=np.int64))
            units = [units[i] for i in np.argsort(seeding.uniform(keys), kind="stable")]
        if self.cfg.legacy_sharding and self.train:
            # gen2's training bug: the same list in every worker. Evaluation is always exact
            # (gen2's n_eval = 128,000 = positives + negatives shows its evaluation was too).
            return units[self.rank::self.world_size]
        total = self.world_size * max(num_workers, 1)
        return units[self.rank * max(num_workers, 1) + worker::total]

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        bs, carry = self.cfg.batch_size, None
        in_split = self._rows_in_split()
        for path, rg, _ in self.my_units(worker, num_workers):
            if not in_split[(path, rg)]:
                continue  # not read at all: phase 4d writes row groups of one split each
            part = self._unit_rows(path, rg)
            if part is None:
                continue
            carry = part if carry is None else _concat(carry, part)
            while len(carry["y"]) >= bs:
                batch, carry = _split(carry, bs)
                yield batch
        if carry is not None and len(carry["y"]):
            yield carry

    def _unit_rows(self, path: str, rg: int) -> dict | None:
        """Every row of this split in row group ``rg`` of ``path``, decoded, in this epoch's
        order and augmented: a batch dict of any length (None if the split has no row here)."""
        cols = ["sample_id", "label", "split", "stamp"] + (list(META_COLUMNS) if self.cfg.metadata else [])
        table = read_row_group(self._file(path), path, rg, cols)
        table = table.filter(pa.array(self._read(table)))
        if table.num_rows == 0:
            return None
        try:
            stamps = decode_stamps(table["stamp"])
        except StampFormatError as exc:
            raise StampFormatError(f"{path}: row group {rg}: {exc}") from exc
        finite = np.isfinite(stamps).all(axis=(1, 2, 3))
        n_skipped = int((~finite).sum())
        if n_skipped:
            table, stamps = table.filter(finite), stamps[finite]
        sample_id = table["sample_id"].to_numpy()
        order = np.arange(len(sample_id))
        if self.train:
            keys = seeding.row_keys(self.seed, "row-order", self.epoch, sample_id)
            order = np.argsort(seeding.uniform(keys), kind="stable")
        x = torch.from_numpy(normalise(stamps[order], self.cfg))
        y = torch.from_numpy(table["label"].to_numpy()[order].astype(np.float32))
        sid = torch.from_numpy(sample_id[order].astype(np.int64))
        meta = torch.from_numpy(metadata_features(table)[order]) if self.cfg.metadata else None
        if self.train and self.cfg.augment:
            k = (seeding.uniform(seeding.row_keys(self.seed, "augment", self.epoch, sample_id[order])) * 8).astype(int)
            x = dihedral(x, k)
        rows = {"x": x, "y": y, "sample_id": sid, "n_skipped": n_skipped}
        if meta is not None:
            rows["meta"] = meta
        return rows


def _concat(a: dict, b: dict) -> dict:
    """Rows of batch dict ``a`` then ``b`` (skip counts added)."""
    return {k: (a[k] + b[k] if k == "n_skipped" else torch.cat([a[k], b[k]])) for k in a}


def _split(rows: dict, n: int) -> tuple[dict, dict]:
    """(the first ``n`` rows, contiguous, with the skip count; the rest, as views)."""
    head = {k: (v if k == "n_skipped" else v[:n].contiguous()) for k, v in rows.items()}
    tail = {k: (0 if k == "n_skipped" else v[n:]) for k, v in rows.items()}
    return head, tail


def ignore_sigterm(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: SLURM's time limit sends SIGTERM to every process of
    the job, DataLoader workers included; a worker that died of it would crash the main
    process ("worker killed by signal") before it could checkpoint. Workers ignore it and
    the main process, which checkpoints and exits, shuts them down. A SIGTERM that reached
    the worker before this ran is pending (:class:`SigtermSafeLoader` forks workers with it
    blocked) and is discarded here."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


class SigtermSafeLoader(DataLoader):
    """A DataLoader that forks its workers with SIGTERM blocked. Between the fork and
    ``worker_init_fn`` a worker has torch's own SIGTERM handler, which dies of a SIGTERM
    not sent by its parent; SLURM's goes to the whole process group, so one arriving as an
    epoch's workers start killed a worker and crashed training (seen in CI:
    tests/test_scale_out.py). Blocked, it waits for :func:`ignore_sigterm`; in the main
    process it is delivered as soon as the workers are started."""

    def __iter__(self):
        if not self.num_workers:
            return super().__iter__()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            return super().__iter__()  # starts (forks) the workers
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stamp_loader(ds: StampStream, num_workers: int) -> DataLoader:
    """A DataLoader over a batching :class:`StampStream` whose workers leave SIGTERM to the
    main process (:func:`ignore_sigterm`, :class:`SigtermSafeLoader`)."""
    return SigtermSafeLoader(ds, batch_size=None, num_workers=num_workers,
                             worker_init_fn=ignore_sigterm if num_workers else None)
