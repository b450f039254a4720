"""Shared fixtures: a small mock DR10 sky rendered once per test session."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lensfinder.sky.mock import MockSkyConfig, bricks_in_sweep, sweep_names, write_brick, write_sweep

REPO = Path(__file__).resolve().parents[1]
# A --configfile is the whole configuration; the workflow tests stack theirs on the demo's.
DEMO = str(REPO / "config/config.yaml")
TINY = REPO / "tests/data/config_tiny.yaml"


def snakemake(*args, cwd=REPO, check=True) -> subprocess.CompletedProcess:
    """``snakemake -s <repo>/Snakefile -d <cwd> *args``, its output captured."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(cwd), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole default DAG on the tiny config (stacked on the demo's), run once."""
    work = tmp_path_factory.mktemp("tiny")
    snakemake("--cores", "2", "--configfile", DEMO, str(TINY), cwd=work)
    return work, TINY


@dataclass
class MockSky:
    cfg: MockSkyConfig
    root: Path
    sweep_dir: Path
    coadd_dir: Path
    catalog_dir: Path
    sweeps: list[Path]
    conditions: dict
    photoz: list[Path]  # the row-matched photo-z sweep of each sweep


def render_mock_sky(root: Path, cfg: MockSkyConfig) -> MockSky:
    coadd_dir, sweep_dir, catalog_dir = root / "coadd", root / "sweep", root / "catalog"
    conditions = {b: write_brick(cfg, b, coadd_dir, catalog_dir / f"{b}.parquet") for b in cfg.bricks}
    sweeps, photoz = [], []
    for name in sweep_names(cfg.bricks):
        catalogs = [catalog_dir / f"{b}.parquet" for b in bricks_in_sweep(cfg.bricks, name)]
        photoz.append(root / "sweep-photo-z" / name.replace(".fits", "-pz.fits"))
        write_sweep(catalogs, sweep_dir / name, photoz[-1])
        sweeps.append(sweep_dir / name)
    return MockSky(cfg, root, sweep_dir, coadd_dir, catalog_dir, sweeps, conditions, photoz)


# A small, dense sky: ~110 LRG-like galaxies per brick (tests need many; the demo's density
# is DESI-like), field galaxies and stars from the counts, and one bright star per brick.
SMALL_SKY = MockSkyConfig(seed=11, bricks=("1501p020", "1551p020"), brick_size_pix=600,
                          lrg_density=60000.0, lrg_min_sep_arcsec=4.0, n_bright_star=1)


@pytest.fixture(scope="session")
def mock_sky(tmp_path_factory) -> MockSky:
    return render_mock_sky(tmp_path_factory.mktemp("mocksky"), SMALL_SKY)


@pytest.fixture
def server():
    """Base URL of a local imitation of the Legacy Surveys viewer (tests/viewer.py)."""
    from viewer import serve
    with serve() as url:
        yield url
