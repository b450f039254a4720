# Candidates: the best model of a run scores the real, un-injected parent sample.

CANDIDATES = config["candidates"]
CANDIDATE_RUN = CANDIDATES["run"]
if RUNS and CANDIDATE_RUN not in RUN_CONFIGS:
    raise ValueError(f"candidates.run: {CANDIDATE_RUN!r} is not a run of this config (runs: {', '.join(RUNS)}); "
                     "set candidates.run")
# Parent cutouts are cut exactly as the candidate model's training stamps were.
CANDIDATE_DATASET = RUN_CONFIGS[CANDIDATE_RUN]["dataset"] if CANDIDATE_RUN in RUN_CONFIGS else None


rule candidate_manifest:
    """The parent sample as an all-control manifest (no arcs), split 'parent'."""
    input:
        parent=rules.parent_lrg.output.parent,
    output:
        f"{RESULTS}/candidates/parent_manifest.parquet",
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/candidates/manifest.log",
    script:
        "../scripts/candidate_manifest.py"


rule candidate_stamps:
    """Cutouts of every parent galaxy, by the phase-4c code, with nothing injected."""
    input:
        manifest=rules.candidate_manifest.output[0],
        coadds=lambda wc: coadd_inputs(),
    output:
        stamps=f"{RESULTS}/candidates/stamps/part-1-of-1.parquet",
        report=f"{RESULTS}/candidates/stamps/part-1-of-1.report.json",
    params:
        inject=inject_params(CANDIDATE_DATASET) if CANDIDATE_DATASET else {},
        coadd_dir=SKY.coadd_dir,
        cutouts=canonical(CUTOUTS.as_params()),
    resources:
        mem_mb=6000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/candidates/stamps.log",
    benchmark:
        f"{BENCH}/candidates/stamps.tsv"
    script:
        "../scripts/negative_stamps.py"


rule candidates:
    """Ranked candidate table, top-N gallery and the known-lens recall check."""
    input:
        run_config=f"{RESULTS}/runs/{CANDIDATE_RUN}/run_config.json",
        best=f"{RESULTS}/runs/{CANDIDATE_RUN}/best.pt",
        metrics=f"{RESULTS}/runs/{CANDIDATE_RUN}/metrics.json",
        stamps=rules.candidate_stamps.output.stamps,
        known_lenses=KNOWN_LENSES,
    output:
        parquet=f"{RESULTS}/candidates/candidates.parquet",
        csv=f"{RESULTS}/candidates/candidates.csv",
        summary=report(
            f"{RESULTS}/candidates/summary.json",
            caption="../report/candidates_summary.rst",
            category="Candidates",
        ),
        png=report(
            f"{RESULTS}/candidates/gallery.png",
            caption="../report/candidates_gallery.rst",
            category="Candidates",
        ),
        html=report(
            f"{RESULTS}/candidates/gallery.html",
            caption="../report/candidates_gallery.rst",
            category="Candidates",
        ),
    params:
        n_gallery=CANDIDATES["gallery_size"],
        mock=SKY.mock,
    threads: TORCH_THREADS
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/candidates/candidates.log",
    benchmark:
        f"{BENCH}/candidates/candidates.tsv"
    script:
        "../scripts/candidates.py"
