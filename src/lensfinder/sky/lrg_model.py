"""Photometry and sizes of the mock sky's LRGs, drawn like DESI LRG targets.

The model is desitarget's own: Gaussian mixtures fitted to DESI LRG targets in Legacy
Surveys DR7.1 (``desitarget/mock/data/dr7.1/gmm_lrg_<type>.fits``), one per Tractor type,
and the fraction of each type per z magnitude (``fractype_lrg.fits``). The first five
columns -- z, g - r, r - z, z - W1 (AB, extinction-corrected) and log10 of the half-light
radius in arcsec -- are shipped in ``lensfinder/data/desi_lrg_gmm_dr7.1.json`` (the
marginal of a Gaussian mixture is the mixture of the marginals); ``tests/test_mock.py``
checks them against the installed desitarget files. The same file is the reference
``benchmarks/mock_realism.py`` compares the mock's parent sample with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

TYPES = ("DEV", "EXP", "REX", "PSF")
SERSIC_N = {"DEV": 4.0, "EXP": 1.0, "REX": 1.0, "PSF": 0.0}


@dataclass(frozen=True)
class Mixture:
    weights: np.ndarray      # (K,)
    means: np.ndarray        # (K, D)
    covariances: np.ndarray  # (K, D, D)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, D) draws."""
        comp = rng.choice(self.weights.size, size=n, p=self.weights / self.weights.sum())
        chol = np.linalg.cholesky(self.covariances)
        z = rng.standard_normal((n, self.means.shape[1]))
        return self.means[comp] + np.einsum("nij,nj->ni", chol[comp], z)


@lru_cache(maxsize=1)
def load() -> tuple[dict[str, Mixture], dict[str, float]]:
    """(mixture per Tractor type, overall fraction of each type). The overall fractions
    are the per-magnitude fractions of ``fractype_lrg`` averaged over its z bins (18-21),
    COMP counted as DEV."""
    raw = json.loads(resources.files("lensfinder").joinpath("data/desi_lrg_gmm_dr7.1.json").read_text())
    mixtures = {t: Mixture(*(np.asarray(raw["types"][t][k], dtype=np.float64)
                             for k in ("weights", "means", "covariances"))) for t in TYPES}
    frac = raw["type_fractions_by_z"]
    overall = {t: float(np.mean(frac[t])) for t in TYPES}
    overall["DEV"] += float(np.mean(frac["COMP"]))
    total = sum(overall.values())
    return mixtures, {t: v / total for t, v in overall.items()}


def draw_lrgs(rng: np.random.Generator, n: int) -> dict:
    """``n`` LRGs: Tractor type, AB magnitudes g, r, z, W1 (extinction-corrected), half-light
    radius (arcsec; 0 for PSF) and Sersic n. Radii are clipped to 0.1-6" and colours to
    the range the fits cover, so the mixtures' far tails cannot make a 30" LRG."""
    mixtures, fractions = load()
    types = rng.choice(np.array(TYPES), size=n, p=[fractions[t] for t in TYPES])
    out = {k: np.zeros(n) for k in ("z", "g_r", "r_z", "z_w1", "re")}
    for t in TYPES:
        sel = np.flatnonzero(types == t)
        if not sel.size:
            continue
        x = mixtures[t].sample(rng, sel.size)
        for j, k in enumerate(("z", "g_r", "r_z", "z_w1")):
            out[k][sel] = x[:, j]
        if t != "PSF":
            out["re"][sel] = np.clip(10 ** x[:, 4], 0.1, 6.0)
    z = np.clip(out["z"], 16.5, 21.5)
    r = z + np.clip(out["r_z"], 0.3, 3.0)
    return {"type": types, "z": z, "r": r, "g": r + np.clip(out["g_r"], 0.3, 3.0),
            "w1": z - np.clip(out["z_w1"], -0.5, 3.0), "re": out["re"],
            "sersic": np.array([SERSIC_N[t] for t in types])}
