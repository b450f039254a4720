"""Counter-based random streams keyed by (config seed, row id, stream).

Every random number in the manifest and the injection is a pure function of the config
seed, the row's id and a named stream, so a row's draws do not depend on which other rows
exist, their order, or how the work is sharded: a rerun is byte-identical, and adding a
sweep file leaves existing rows unchanged.

numpy's Generators cannot be vectorised over millions of independent keys without a
per-row Python loop, so this is SplitMix64 (Steele et al. 2014) written with numpy uint64
array arithmetic: one hash per (key, counter), vectorised over both.
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x) -> np.ndarray:
    """SplitMix64 finaliser of uint64 ``x`` (wrapping arithmetic, elementwise)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_id(name: str) -> int:
    """A stable integer for a stream or dataset name."""
    return zlib.crc32(name.encode())


def row_keys(seed: int, *ids) -> np.ndarray:
    """uint64 keys, one per row, from the config seed and any number of id arrays (or
    ints, or names) that together identify the row and the purpose of the draws."""
    with np.errstate(over="ignore"):
        key = splitmix64(np.uint64(seed % 2**64))
        for part in ids:
            if isinstance(part, str):
                part = stream_id(part)
            part = np.asarray(part)
            if part.dtype.kind == "i":
                part = part.astype(np.int64).view(np.uint64) if part.ndim else np.uint64(int(part) % 2**64)
            key = splitmix64(key ^ splitmix64(part))
    return np.atleast_1d(key)


def uniform(keys: np.ndarray, n: int | None = None) -> np.ndarray:
    """Uniform [0, 1) draws: (N,) for ``n`` None, else (N, n). Draw j of a row depends only
    on that row's key and j."""
    cols = 1 if n is None else n
    with np.errstate(over="ignore"):
        bits = splitmix64(keys[:, None] ^ splitmix64(np.arange(cols, dtype=np.uint64))[None, :])
    u = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return u[:, 0] if n is None else u


def normal(keys: np.ndarray, n: int) -> np.ndarray:
    """Standard normal draws, (N, n) (Box-Muller on two uniform streams)."""
    half = (n + 1) // 2
    u = uniform(keys, 2 * half)
    u1, u2 = 1.0 - u[:, :half], u[:, half:]  # u1 in (0, 1]: log is finite
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1)
    return z[:, :n]
