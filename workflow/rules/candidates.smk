# Candidates: the best model of a run scores the real, un-injected parent sample.

CANDIDATES = config.get("candidates", {})
CANDIDATE_RUN = CANDIDATES.get("run", "gen3")


rule candidate_manifest:
    """The parent sample as an all-control manifest (no arcs), split 'parent'."""
    input:
        parent=rules.parent_lrg.output.parent,
    output:
        f"{RESULTS}/candidates/parent_manifest.parquet",
    conda:
        "../../envs/train.yaml"
    log:
        "logs/candidates/manifest.log",
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
        inject=inject_params(DATASETS[0]) if DATASETS else {},
        coadd_dir=SKY.coadd_dir,
    resources:
        mem_mb=6000,
    conda:
        "../../envs/train.yaml"
    log:
        "logs/candidates/stamps.log",
    benchmark:
        "benchmarks/rules/candidates/stamps.tsv"
    script:
        "../scripts/candidate_stamps.py"


rule candidates:
    """Ranked candidate table, top-N gallery and the known-lens recall check."""
    input:
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
        run_config=f"{RESULTS}/runs/{CANDIDATE_RUN}/run_config.json",
        n_gallery=CANDIDATES.get("gallery_size", 48),
        mock=SKY.mock,
    threads: 2
    conda:
        "../../envs/train.yaml"
    log:
        "logs/candidates/candidates.log",
    benchmark:
        "benchmarks/rules/candidates/candidates.tsv"
    script:
        "../scripts/candidates.py"
