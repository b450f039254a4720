"""False-positive populations of the mock sky: red galaxies with light that looks like an arc.

Real lens searches are fooled by ring galaxies, spiral arms, blue satellites, edge-on disks,
tidal debris and chance alignments (Rojas et al. 2022, 539 ring-galaxy false positives;
HOLISMOKES XI, Canameras et al. 2024: the choice of negatives moves low-FPR TPR by tens of
points). Each population here is an LRG-like host of the mock sky plus *uncatalogued*
light components around it. The Tractor would fit the red core, so the host's sweep
photometry is the core's, and the host reaches the parent sample exactly when an ordinary
LRG with that photometry would. (Blended light that a real Tractor fit would partly absorb
into the core is ignored.) The components are round or elliptical Sersic profiles, rendered
by the mock with the brick's PSF like every other object.

Geometry and colours follow the morphology each population is named after, sized to be seen
at 0.262"/pixel in ~1.3" seeing (rings of 2-4" radius, arms and tails to 4-8", companions
beyond the host's seeing disk) and overlapping the arcs of the injected lenses (theta_E
~1.3-2.5"), since that is where they fool a classifier. The parameters are chosen by eye for
the mock, not fitted to a survey; :data:`SKY_RATES` are the rates on the real sky.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lensfinder import BANDS, PIXSCALE
from lensfinder.photometry import mag_to_flux, mw_transmission
from lensfinder.sky.shapes import ellipticity

POPULATIONS = ("blue_companion", "chance_alignment", "ring", "spiral_arms", "edge_on_disk", "tidal_tails")
"""The named false-positive populations, in the order their hosts and components are drawn."""
ORDINARY = "ordinary"       # a mock galaxy with no false-positive feature
UNLABELLED = "unlabelled"   # real data: nothing is known about the galaxy's kind

DEMO_RATES = {"blue_companion": 0.10, "chance_alignment": 0.08, "ring": 0.08, "spiral_arms": 0.08,
              "edge_on_disk": 0.08, "tidal_tails": 0.08}
SKY_RATES = {"blue_companion": 0.05, "chance_alignment": 0.03, "ring": 0.003, "spiral_arms": 0.02,
             "edge_on_disk": 0.02, "tidal_tails": 0.03}
"""Fraction of DESI-like LRGs hosting each feature on the real sky, as it would show at
DECaLS depth -- our estimates, not measurements, to be replaced where a survey measures
them: chance_alignment from the number counts (a galaxy brighter than r = 23, ~24,000 per
deg^2, within 0.7-2.5" of the LRG: 3%); ring galaxies are ~0.1-0.3% of galaxies (collisional
rings are rarer still), though a common confusion in lens searches (Rojas et al. 2022);
tidal features are seen around most massive early types in deep imaging (Tal et al. 2009,
AJ 138, 1417: 73% at mu ~ 28) but at DECaLS depth and z ~ 0.5 in a few per cent; spirals
and edge-on disks pass LRG colour cuts at the per-cent level; blue satellites within 2.5"
bright enough to see: a few per cent. The mock's own ``rates`` are training rates, far
above these (``benchmarks/mock_realism.py`` prints both)."""
SPREAD_BOOST_MAG = {"spiral_arms": 0.75, "tidal_tails": 0.5}
"""Magnitudes brighter than ``mag_r`` for the features spread over 5-10x a companion's area:
at the same total flux their arms and tails would sit below the noise (chosen by eye on
the gallery of ``benchmarks/mock_realism.py``)."""
KNOT_N = 0.5  # Sersic n = 0.5 is a Gaussian: star-forming knots and ring/arm/tail segments


@dataclass(frozen=True)
class FalsePositiveConfig:
    """The ``sky.mock.false_positives`` config section.

    rates: fraction of the mock's LRG-like galaxies hosting each population (their sum
    must be <= 1; a population left out of a given ``rates`` has rate 0). The default
    (the CPU demo's) rates are far above the real sky's -- ring galaxies are ~0.1% of
    galaxies -- so that a small sky holds enough look-alikes to match controls on.
    mag_r: total r magnitude of a feature's light (uniform), AB, before Galactic extinction.
    """

    rates: dict = field(default_factory=lambda: dict(DEMO_RATES))
    mag_r: tuple[float, float] = (19.0, 21.5)

    @classmethod
    def from_dict(cls, d: dict | None) -> "FalsePositiveConfig":
        d = dict(d or {})
        rates = dict(DEMO_RATES) if "rates" not in d else {p: 0.0 for p in POPULATIONS}
        unknown = set(d.get("rates", {})) - set(POPULATIONS)
        if unknown:
            raise ValueError(f"sky.mock.false_positives.rates: unknown population(s) {sorted(unknown)}; "
                             f"known: {POPULATIONS}")
        rates.update(d.get("rates", {}))
        if sum(rates.values()) > 1 + 1e-9 or min(rates.values()) < 0:
            raise ValueError(f"sky.mock.false_positives.rates must be >= 0 and sum to <= 1, got {rates}")
        return cls(rates=rates, mag_r=tuple(d.get("mag_r", cls.mag_r)))


def assign_populations(rng: np.random.Generator, is_host: np.ndarray, cfg: FalsePositiveConfig) -> np.ndarray:
    """Population name of every object: one uniform draw per object, cut at the cumulative
    rates; only ``is_host`` objects (the LRG-like ones) can host a feature."""
    u = rng.random(len(is_host))
    edges = np.cumsum([cfg.rates.get(p, 0.0) for p in POPULATIONS])
    idx = np.searchsorted(edges, u, side="right")
    names = np.asarray(POPULATIONS + (ORDINARY,), dtype=object)[np.minimum(idx, len(POPULATIONS))]
    return np.where(is_host, names, ORDINARY).astype(str)


@dataclass
class Components:
    """Light components of the features of ``len(host)`` hosts: offsets from the host in
    arcsec (x = West, y = North, as the coadd's pixel axes), half-light radius (arcsec),
    axis ratio, major-axis position angle (radians East of North), Sersic n, fraction of
    the feature's light, g-r and r-z colours (AB), and the index of the host they belong to."""

    host: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    re: np.ndarray
    q: np.ndarray
    pa: np.ndarray
    n: np.ndarray
    weight: np.ndarray
    g_r: np.ndarray
    r_z: np.ndarray


def _offset(sep, pa) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) arcsec of separation ``sep`` at position angle ``pa`` East of North."""
    return -sep * np.sin(pa), sep * np.cos(pa)


def _chain(rng, n_hosts: int, radius: np.ndarray, phi: np.ndarray, q_proj, rot, weight, knot_re, g_r, r_z,
           colour_scatter: float = 0.05) -> Components:
    """Knots along curves given in polar form per host ((n, K) radius arcsec and angle rad),
    projected with axis ratio ``q_proj`` and rotated by ``rot`` (per host)."""
    k = radius.shape[1]
    u, v = radius * np.cos(phi), radius * np.sin(phi) * q_proj[:, None]
    c, s = np.cos(rot)[:, None], np.sin(rot)[:, None]
    dx, dy = c * u - s * v, s * u + c * v
    host = np.repeat(np.arange(n_hosts), k)
    shape = (n_hosts, k)
    return Components(
        host=host, dx=dx.ravel(), dy=dy.ravel(), re=knot_re.ravel(), q=rng.uniform(0.6, 1.0, shape).ravel(),
        pa=rng.uniform(0, np.pi, shape).ravel(), n=np.full(host.size, KNOT_N),
        weight=(weight / weight.sum(axis=1, keepdims=True)).ravel(),
        g_r=(g_r[:, None] + rng.normal(0, colour_scatter, shape)).ravel(),
        r_z=(r_z[:, None] + rng.normal(0, colour_scatter, shape)).ravel())


def _blue_companion(rng, n: int) -> Components:
    """One or two compact blue satellites (exponential, r_e 0.2-0.5") 1.5-4" out, beyond
    the host's seeing disk so they show as separate knots."""
    sep = rng.uniform(1.5, 4.0, (n, 2))
    dx, dy = _offset(sep, rng.uniform(0, 2 * np.pi, (n, 2)))
    second = rng.random(n) < 0.4
    weight = np.where(np.stack([np.ones(n, bool), second], 1), [0.65, 0.35], 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return Components(host=np.repeat(np.arange(n), 2), dx=dx.ravel(), dy=dy.ravel(),
                      re=rng.uniform(0.2, 0.5, 2 * n), q=rng.uniform(0.5, 1.0, 2 * n),
                      pa=rng.uniform(0, np.pi, 2 * n), n=np.ones(2 * n), weight=weight.ravel(),
                      g_r=rng.normal(0.3, 0.15, 2 * n), r_z=rng.normal(0.2, 0.15, 2 * n))


def _chance_alignment(rng, n: int) -> Components:
    """A blue background disk galaxy (exponential, r_e 0.4-1.0", any shape) 1.5-4" away."""
    dx, dy = _offset(rng.uniform(1.5, 4.0, n), rng.uniform(0, 2 * np.pi, n))
    return Components(host=np.arange(n), dx=dx, dy=dy, re=rng.uniform(0.4, 1.0, n), q=rng.uniform(0.3, 1.0, n),
                      pa=rng.uniform(0, np.pi, n), n=np.ones(n), weight=np.ones(n),
                      g_r=rng.normal(0.4, 0.2, n), r_z=rng.normal(0.3, 0.2, n))


def _ring(rng, n: int, k: int = 28) -> Components:
    """A star-forming ring of ``k`` overlapping knots, radius 2.5-4.5" (~15-30 kpc at z ~ 0.5, as
    the rings of S0s and collisional rings; Appleton & Struck-Marcell 1996), seen at axis
    ratio 0.5-1, around the red bulge: a closed blue loop at DECaLS resolution."""
    phi = np.linspace(0, 2 * np.pi, k, endpoint=False)[None, :] + rng.uniform(0, 2 * np.pi, (n, 1))
    radius = rng.uniform(2.5, 4.5, (n, 1)) * (1 + rng.normal(0, 0.04, (n, k)))
    weight = np.clip(1 + 0.4 * rng.normal(size=(n, k)), 0.1, None)
    return _chain(rng, n, radius, phi, rng.uniform(0.5, 1.0, n), rng.uniform(0, np.pi, n), weight,
                  rng.uniform(0.2, 0.35, (n, k)), rng.normal(0.25, 0.15, n), rng.normal(0.15, 0.15, n))


def _spiral_arms(rng, n: int, per_arm: int = 16) -> Components:
    """Two blue logarithmic spiral arms (pitch 18-26 deg, half a turn each) from 1.2-1.6" out
    to 3.3-7.4", narrow (knots r_e 0.25-0.4" overlapping along the arm), around a red bulge (a
    face-on early-type spiral)."""
    t = np.linspace(0, np.pi, per_arm)[None, :]
    r0 = rng.uniform(1.2, 1.6, (n, 1))
    pitch = np.radians(rng.uniform(18, 26, (n, 1)))
    radius = np.concatenate([r0 * np.exp(t * np.tan(pitch))] * 2, axis=1)
    phi = np.concatenate([t, t + np.pi], axis=1) * rng.choice([-1, 1], (n, 1))
    # knots sit at equal steps in angle, so the arm's length per knot grows with radius:
    # weights grow with it too, keeping the arm's surface brightness about even
    weight = radius / r0 * np.clip(1 + 0.3 * rng.normal(size=(n, 2 * per_arm)), 0.2, None)
    return _chain(rng, n, radius, phi, rng.uniform(0.7, 1.0, n), rng.uniform(0, 2 * np.pi, n), weight,
                  rng.uniform(0.25, 0.4, (n, 2 * per_arm)), rng.normal(0.3, 0.15, n), rng.normal(0.2, 0.15, n))


def _edge_on_disk(rng, n: int) -> Components:
    """A thin blue disk (exponential, r_e 1.0-2.0", q 0.10-0.2) 2.5-4.5" away, its major
    axis roughly tangential to the host -- a streak the length of an arc, without its
    curvature."""
    sep_pa = rng.uniform(0, 2 * np.pi, n)
    dx, dy = _offset(rng.uniform(2.5, 4.5, n), sep_pa)
    return Components(host=np.arange(n), dx=dx, dy=dy, re=rng.uniform(1.0, 2.0, n), q=rng.uniform(0.10, 0.2, n),
                      pa=sep_pa + np.pi / 2 + rng.normal(0, np.radians(20), n), n=np.ones(n), weight=np.ones(n),
                      g_r=rng.normal(0.4, 0.15, n), r_z=rng.normal(0.3, 0.15, n))


SHELL_FRACTION = 0.5
"""Fraction of the tidal-feature hosts showing shells rather than tails. Deep surveys of
early types find shells and tails/streams at comparable rates (Atkinson et al. 2013, ApJ
765, 28; Tal et al. 2009, AJ 138, 1417); half each is our estimate."""


def _concat(parts: list[tuple[np.ndarray, Components]]) -> Components:
    """One Components from (hosts, components) pairs, each part's host index mapped through
    its ``hosts`` (the part's hosts among all)."""
    fields = Components.__dataclass_fields__
    return Components(**{k: np.concatenate([hosts[c.host] if k == "host" else getattr(c, k) for hosts, c in parts])
                         for k in fields})


def _tails(rng, n: int, per_tail: int = 14) -> Components:
    """Two curved tidal tails of a merger, from ~1" out to 5-8", diffuse (knots r_e
    0.3-0.5", overlapping) and of intermediate colour (old stars with some star formation)."""
    t = np.linspace(0, 1, per_tail)[None, :]
    r0, r1 = rng.uniform(0.8, 1.2, (n, 1)), rng.uniform(5.0, 8.0, (n, 1))
    sweep = rng.uniform(0.6, 1.0, (n, 1)) * np.pi * rng.choice([-1, 1], (n, 1))
    radius = np.concatenate([r0 + (r1 - r0) * t] * 2, axis=1)
    phi = np.concatenate([sweep * t, sweep * t + np.pi], axis=1)
    weight = np.concatenate([np.exp(-1.0 * t)] * 2, axis=1) * (1 + 0.2 * rng.random((n, 2 * per_tail)))
    return _chain(rng, n, radius, phi, rng.uniform(0.6, 1.0, n), rng.uniform(0, 2 * np.pi, n), weight,
                  rng.uniform(0.3, 0.5, (n, 2 * per_tail)), rng.normal(0.7, 0.15, n), rng.normal(0.45, 0.1, n))


def _shells(rng, n: int, n_shells: int = 3, per_shell: int = 12) -> Components:
    """Three concentric shells of a radial minor merger (type I: interleaved on alternate
    sides of the host along one axis; Quinn 1984, ApJ 279, 596): thin arcs (knots r_e
    0.25-0.35" at one radius each) spanning 100-160 deg, at radii growing by ~1.5x from
    1.5-2.5" to ~3-6.4", the outer ones fainter, red as the host's old stars. At DECaLS
    resolution a shell is a short, sharp-edged arc at the distance of a lens's arcs -- the
    look-alike the tails are not."""
    j = np.repeat(np.arange(n_shells), per_shell)[None, :]  # (1, K) shell index of each knot
    t = np.tile(np.linspace(-0.5, 0.5, per_shell), n_shells)[None, :]  # position along the shell
    radius = rng.uniform(1.5, 2.5, (n, 1)) * rng.uniform(1.4, 1.6, (n, 1)) ** j
    radius = radius * (1 + rng.normal(0, 0.01, radius.shape))
    phi = np.pi * j + np.radians(rng.uniform(100, 160, (n, n_shells)))[:, j[0]] * t
    weight = 0.7 ** j * (1 + 0.2 * rng.random((n, n_shells * per_shell)))
    return _chain(rng, n, radius, phi, rng.uniform(0.7, 1.0, n), rng.uniform(0, 2 * np.pi, n), weight,
                  rng.uniform(0.25, 0.35, (n, n_shells * per_shell)), rng.normal(0.8, 0.1, n),
                  rng.normal(0.45, 0.1, n))


def _tidal_tails(rng, n: int) -> Components:
    """Tidal features: two tails (:func:`_tails`) or, for :data:`SHELL_FRACTION` of the hosts,
    shells (:func:`_shells`). (The population keeps its configured name, ``tidal_tails``.)"""
    shell = rng.random(n) < SHELL_FRACTION
    tails, shells = np.flatnonzero(~shell), np.flatnonzero(shell)
    return _concat([(tails, _tails(rng, tails.size)), (shells, _shells(rng, shells.size))])


_DRAW = {"blue_companion": _blue_companion, "chance_alignment": _chance_alignment, "ring": _ring,
         "spiral_arms": _spiral_arms, "edge_on_disk": _edge_on_disk, "tidal_tails": _tidal_tails}


def feature_light(rng: np.random.Generator, population: np.ndarray, x: np.ndarray, y: np.ndarray, ebv: float,
                  cfg: FalsePositiveConfig) -> tuple[dict, dict]:
    """The uncatalogued light of every host of a brick.

    ``population``: name per object (:func:`assign_populations`); ``x``, ``y``: object
    pixel positions; ``ebv``: the brick's E(B-V). Returns (render components: pixel x, y,
    observed noise-free flux per band in nanomaggies, r_e arcsec, e1, e2, Sersic n --
    the arrays :func:`lensfinder.sky.mock.render_brick` renders -- and each component's
    host index and population; per-object extra flux per
    band, nanomaggies, 0 for objects without a feature). Every draw comes from ``rng``, one
    population after another in :data:`POPULATIONS` order."""
    parts, extra = [], {b: np.zeros(len(x)) for b in BANDS}
    for name in POPULATIONS:
        hosts = np.flatnonzero(population == name)
        if not hosts.size:
            continue
        c = _DRAW[name](rng, hosts.size)
        keep = c.weight > 0
        total_r = mag_to_flux(rng.uniform(*cfg.mag_r, hosts.size) - SPREAD_BOOST_MAG.get(name, 0.0))[c.host] * c.weight
        fluxes = {"r": total_r, "g": total_r * 10 ** (-0.4 * c.g_r), "z": total_r * 10 ** (0.4 * c.r_z)}
        e1, e2 = ellipticity(c.q, c.pa)
        part = {"x": x[hosts][c.host] + c.dx / PIXSCALE, "y": y[hosts][c.host] + c.dy / PIXSCALE,
                "re": c.re, "e1": e1, "e2": e2, "sersic": c.n, "host": hosts[c.host],
                "population": np.full(c.host.size, name),
                "flux": {b: fluxes[b] * mw_transmission(ebv, b) for b in BANDS}}
        for b in BANDS:
            np.add.at(extra[b], hosts[c.host[keep]], part["flux"][b][keep])
        parts.append({k: ({b: v[b][keep] for b in BANDS} if k == "flux" else v[keep]) for k, v in part.items()})
    keys = ("x", "y", "re", "e1", "e2", "sersic", "host", "population")
    if not parts:
        return {**{k: np.zeros(0) for k in keys}, "flux": {b: np.zeros(0) for b in BANDS}}, extra
    comps = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    comps["flux"] = {b: np.concatenate([p["flux"][b] for p in parts]) for b in BANDS}
    return comps, extra
