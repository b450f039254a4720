"""Shared fixtures: a small mock DR10 sky rendered once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lensfinder.sky.mock import MockSkyConfig, bricks_in_sweep, sweep_names, write_brick, write_sweep

REPO = Path(__file__).resolve().parents[1]


@dataclass
class MockSky:
    cfg: MockSkyConfig
    root: Path
    sweep_dir: Path
    coadd_dir: Path
    catalog_dir: Path
    sweeps: list[Path]
    conditions: dict


def render_mock_sky(root: Path, cfg: MockSkyConfig) -> MockSky:
    coadd_dir, sweep_dir, catalog_dir = root / "coadd", root / "sweep", root / "catalog"
    conditions = {b: write_brick(cfg, b, coadd_dir, catalog_dir / f"{b}.parquet") for b in cfg.bricks}
    sweeps = []
    for name in sweep_names(cfg.bricks):
        write_sweep([catalog_dir / f"{b}.parquet" for b in bricks_in_sweep(cfg.bricks, name)], sweep_dir / name)
        sweeps.append(sweep_dir / name)
    return MockSky(cfg, root, sweep_dir, coadd_dir, catalog_dir, sweeps, conditions)


SMALL_SKY = MockSkyConfig(seed=11, bricks=("1501p020", "1551p020"), brick_size_pix=500,
                          n_lrg=150, n_blue=80, n_star=40, n_bright_star=1)


@pytest.fixture(scope="session")
def mock_sky(tmp_path_factory) -> MockSky:
    return render_mock_sky(tmp_path_factory.mktemp("mocksky"), SMALL_SKY)
