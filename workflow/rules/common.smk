# Input functions and shared names of the rule files.
from lensfinder.sky.bricks import coadd_path
from lensfinder.sky.mock import bricks_in_sweep



def canonical(value):
    """Dict params with keys sorted at every level. Snakemake fingerprints params by
    repr(), which follows dict order: without this, merely reordering keys in a user's
    YAML would rerun the rule."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


MOCK = canonical(config["sky"].get("mock"))


def mock_brick_files(wildcards):
    """Catalogues and coadds of the mock bricks that fall in one sweep file."""
    bricks = bricks_in_sweep(MOCK["bricks"], f"{wildcards.sweep}.fits")
    return {
        "catalogs": [f"{RESULTS}/mock_sky/catalog/{b[:3]}/{b}.parquet" for b in bricks],
        "coadds": [
            str(coadd_path(SKY.coadd_dir, b, kind, band))
            for b in bricks
            for kind in ("image", "invvar")
            for band in "grz"
        ],
    }

