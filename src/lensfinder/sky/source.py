"""Where the raw DR10 inputs of a run live: the mock sky under the results directory, or
real DR10 sweeps and coadds at configured paths (e.g. NERSC). The workflow asks this
module for the sweep list at DAG-build time, so both sources give the same DAG shape.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from lensfinder.sky.bricks import SWEEP_RE, bricks_in_box
from lensfinder.sky.cutout_source import CutoutSourceConfig
from lensfinder.sky.mock import sweep_names as mock_sweep_names


@dataclass(frozen=True)
class SkyLayout:
    """sweep_dir / coadd_dir: directories in DR10 layout; sweeps: sweep file stems
    (``sweep-150p000-155p005``) the run selects from; mock: whether the workflow makes them;
    photoz_dir: the row-matched photometric-redshift sweeps (``<stem>-pz.fits``), or "" for
    none (the parent sample then has no lens redshifts)."""

    sweep_dir: str
    coadd_dir: str
    sweeps: tuple[str, ...]
    mock: bool
    photoz_dir: str = ""

    def photoz_path(self, sweep: str) -> str:
        """The photo-z sweep row-matched to sweep file stem ``sweep``."""
        return f"{self.photoz_dir}/{sweep}-pz.fits"


def resolve_mock_bricks(sky: dict) -> None:
    """In place: a mock sky's ``bricks`` given as ``{ra: [lo, hi], dec: [lo, hi]}`` becomes
    the list of grid bricks centred in that box (an empty box is an error)."""
    mock = sky.get("mock") or {}
    box = mock.get("bricks")
    if isinstance(box, dict):
        mock["bricks"] = bricks_in_box(tuple(box["ra"]), tuple(box["dec"]))
        if not mock["bricks"]:
            raise ValueError(f"sky.mock.bricks {box}: no brick of the grid is centred in that box")


SKY_SOURCES = ("mock", "dr10")  # the built-in mock sky, or DR10 files on disk


def sky_layout(sky: dict, results_dir: str = "results") -> SkyLayout:
    """Resolve the ``sky`` config section. For ``source: dr10`` with no explicit ``sweeps``
    list, every ``sweep-*.fits`` in ``sweep_dir`` is used (checked at workflow start)."""
    if sky["source"] not in SKY_SOURCES:
        raise ValueError(f"sky.source: {sky['source']!r} is not one of {list(SKY_SOURCES)}")
    if sky["source"] == "mock":
        root = f"{results_dir}/mock_sky"
        names = mock_sweep_names(sky["mock"]["bricks"])
        return SkyLayout(f"{root}/sweep", f"{root}/coadd", tuple(n[: -len(".fits")] for n in names), True,
                         f"{root}/sweep-photo-z")
    dr10 = sky["dr10"]
    sweep_dir = Path(expand_path(dr10["sweep_dir"], "sky.dr10.sweep_dir"))
    if dr10.get("sweeps"):
        names = [s[: -len(".fits")] if s.endswith(".fits") else s for s in dr10["sweeps"]]
    else:
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"sky.dr10.sweep_dir {sweep_dir} does not exist (set it in your config)")
        names = sorted(p.name[: -len(".fits")] for p in sweep_dir.glob("sweep-*.fits") if SWEEP_RE.match(p.name))
        if not names:
            raise FileNotFoundError(f"no sweep-*.fits files in sky.dr10.sweep_dir {sweep_dir}")
    bad = [n for n in names if not SWEEP_RE.match(n + ".fits")]
    if bad:
        raise ValueError(f"not DR10 sweep file names: {bad}")
    service = CutoutSourceConfig.from_dict(sky.get("cutouts"), results_dir).source == "service"
    if not dr10.get("coadd_dir") and not service:
        raise ValueError("sky.dr10.coadd_dir is required unless sky.cutouts.source is 'service'")
    coadd_dir = expand_path(dr10["coadd_dir"], "sky.dr10.coadd_dir") if dr10.get("coadd_dir") else ""
    photoz_dir = expand_path(dr10["photoz_dir"], "sky.dr10.photoz_dir") if dr10.get("photoz_dir") else ""
    return SkyLayout(str(sweep_dir), coadd_dir, tuple(names), False, photoz_dir)


def expand_path(path: str, key: str) -> str:
    """``$VAR`` / ``${VAR}`` in a configured path, from the environment (e.g. legacypipe's
    ``LEGACY_SURVEY_DIR``); an unset variable is an error naming the key."""
    missing = [m[0] or m[1] for m in re.findall(r"\$\{(\w+)\}|\$(\w+)", path) if (m[0] or m[1]) not in os.environ]
    if missing:
        raise ValueError(f"{key} {path!r} uses ${missing[0]}, which is not set in the environment "
                         f"(e.g. export LEGACY_SURVEY_DIR=/global/cfs/cdirs/cosmo/data/legacysurvey/dr10 at NERSC)")
    return os.path.expandvars(path)
