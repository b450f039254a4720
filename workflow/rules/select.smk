# Phase 3: DESI LRG selection, one job per sweep file (scatter), then gathered.
from lensfinder.select import CHUNK_ROWS, DEFAULT_MASKBITS


rule select_lrg:
    """Select DESI LRGs (DECaLS cuts) from one sweep file, streaming in row chunks, with
    their redshifts from the row-matched photo-z sweep where the sky has them."""
    input:
        unpack(lambda w: {"sweep": f"{SKY.sweep_dir}/{w.sweep}.fits",
                          **({"photoz": SKY.photoz_path(w.sweep)} if SKY.photoz_dir else {})}),
    output:
        parquet=f"{RESULTS}/phase3/per_sweep/{{sweep}}.parquet",
        summary=f"{RESULTS}/phase3/per_sweep/{{sweep}}.summary.json",
    params:
        maskbits=config["select"].get("maskbits", list(DEFAULT_MASKBITS)),
        chunk_rows=config["select"].get("chunk_rows", CHUNK_ROWS),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/select_lrg/{{sweep}}.log",
    benchmark:
        f"{BENCH}/select_lrg/{{sweep}}.tsv"
    script:
        "../scripts/select_lrg.py"


rule parent_lrg:
    """Gather the per-sweep selections into the LRG parent sample and its summary."""
    input:
        parts=expand(f"{RESULTS}/phase3/per_sweep/{{sweep}}.parquet", sweep=SKY.sweeps),
        summaries=expand(f"{RESULTS}/phase3/per_sweep/{{sweep}}.summary.json", sweep=SKY.sweeps),
    output:
        parent=f"{RESULTS}/phase3/parent_lrg.parquet",
        summary=report(
            f"{RESULTS}/phase3/selection_summary.json",
            caption="../report/selection_summary.rst",
            category="Phase 3: LRG selection",
        ),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/parent_lrg.log",
    benchmark:
        f"{BENCH}/parent_lrg.tsv"
    script:
        "../scripts/parent_lrg.py"
