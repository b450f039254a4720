"""How DR10-like the mock sky is around an LRG (issue 26): number counts, LRG density and
properties, neighbours, look-alike rates, and a gallery -- measured on a finished mock-sky
run (the demo's by default: run `make demo` or `snakemake --cores 2 parent_lrg` first).

Prints JSON (also written to --out) and writes two figures: the counts / neighbours /
properties panel (--figure) and a gallery of 48 random parent LRGs and 8 random members of
each look-alike population at a faint stretch (--gallery).
Usage: python benchmarks/mock_realism.py [--config config/config.yaml]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from lensfinder import mock_realism as mr
from lensfinder.plots import image_grid, write_png
from lensfinder.sky.mock_config import MockSkyConfig, sweep_names


def realism_figure(out: dict, path: Path) -> None:
    from matplotlib.figure import Figure
    c = out["number_counts"]
    fig = Figure(figsize=(13, 4))
    ax = fig.subplots(1, 3)
    m = np.asarray(c["bins_r"]) + 0.25
    ax[0].semilogy(m, c["reference_per_deg2_per_mag"], "k-", label="reference (galaxies + stars)")
    ax[0].semilogy(m, np.maximum(c["sweep_per_deg2_per_mag"], 0.1), "o", label="mock sweeps")
    ax[0].semilogy(m, c["star_reference_per_deg2_per_mag"], "k:", label="reference stars")
    ax[0].semilogy(m, np.maximum(c["stars_per_deg2_per_mag"], 0.1), "s", ms=3, label="mock stars")
    ax[0].axvline(c["detection_limit_r"], color="grey", ls="--", lw=0.8)
    ax[0].set(xlabel="r (AB)", ylabel="objects / deg$^2$ / mag", title="number counts", ylim=(1, 3e5))
    ax[0].legend(fontsize=7)
    nb = out["neighbours"]["per_lrg_by_r"]
    ax[1].bar(list(nb), list(nb.values()))
    ax[1].set(ylabel=f"per LRG within {mr.NEIGHBOUR_RADIUS_ARCSEC}\"", title="catalogued neighbours by r")
    ax[1].tick_params(axis="x", labelsize=7)
    rates = out["population_rates"]
    x = np.arange(len(rates))
    ax[2].bar(x - 0.2, [v["mock"] for v in rates.values()], 0.4, label="mock (training rate)")
    ax[2].bar(x + 0.2, [v["sky"] for v in rates.values()], 0.4, label="sky (estimate)")
    ax[2].set_xticks(x, list(rates), rotation=30, fontsize=7)
    ax[2].set(ylabel="fraction of parent LRGs", title="look-alike populations")
    ax[2].legend(fontsize=7)
    fig.suptitle("mock sky vs references (simulation)", fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--out", default="benchmarks/mock_realism.json")
    ap.add_argument("--figure", default="benchmarks/mock_realism.png")
    ap.add_argument("--gallery", default="benchmarks/mock_gallery.png")
    args = ap.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    mock = MockSkyConfig.from_dict(config["sky"]["mock"])
    root = Path(config.get("results_dir", "results"))
    sky = root / "mock_sky"
    area = len(mock.bricks) * mock.brick_area_deg2
    sweeps = mr.Sweeps.read([sky / "sweep" / s for s in sweep_names(mock.bricks)])
    truth = pq.read_table([sky / "catalog" / b[:3] / f"{b}.parquet" for b in mock.bricks],
                          columns=["MOCK_POP", "FLUX_R", "MW_TRANSMISSION_R"]).to_pandas()
    stars = truth[(truth.MOCK_POP == "star") & (truth.FLUX_R > 0)]
    stars_r = 22.5 - 2.5 * np.log10(stars.FLUX_R / stars.MW_TRANSMISSION_R)
    parents = mr.read_parents(root / "phase3/parent_lrg.parquet")
    out = {"config": args.config, "n_bricks": len(mock.bricks), "area_deg2": round(area, 4),
           "number_counts": mr.number_counts(sweeps, stars_r.to_numpy(), area),
           "lrgs": mr.lrg_properties(parents, mr.reference_lrg_properties(), area),
           "neighbours": mr.neighbours(parents, sweeps),
           "population_rates": mr.population_rates(parents)}
    realism_figure(out, Path(args.figure))
    rows = mr.gallery_rows(parents)
    image_grid(mr.gallery_stamps(rows, sky / "coadd"), args.gallery,
               "48 random parent LRGs, then 8 random members of each look-alike population (asinh g,r,z, "
               f"stretch {mr.FAINT_STRETCH} nanomaggies; simulation)", cols=8)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
