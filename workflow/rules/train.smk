# Phase 5: training and evaluation, one of each per named run.

localrules:
    run_config,


rule run_config:
    """A run's settings with every default filled, from the merged config (all --configfile
    and --config): the one file train, evaluate, diagnose and candidates read them from, and
    the fingerprint every product of the run is checked against."""
    output:
        f"{RESULTS}/runs/{{run}}/run_config.json",
    params:
        run=lambda wc: run_params(wc.run),
        seed=lambda wc: RUN_CONFIGS[wc.run]["seed"],  # the replicate's own (runs.<run>.seeds)
        dataset=lambda wc: RUN_CONFIGS[wc.run]["dataset"],
        nproc=lambda wc: RUN_CONFIGS[wc.run].get("nproc", 1),
        stamps=lambda wc: run_stamps(wc.run),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/run_config/{{run}}.log",
    script:
        "../scripts/run_config.py"


rule train:
    """Train one run (DDP via torchrun when nproc > 1). Resumes from its checkpoint
    directory after a kill; a changed configuration or changed stamps start it over (the
    old state kept in ckpt.previous/)."""
    input:
        run_config=rules.run_config.output[0],
        stamps=lambda wc: run_stamps(wc.run),
    output:
        best=f"{RESULTS}/runs/{{run}}/best.pt",
        history=report(
            f"{RESULTS}/runs/{{run}}/history.json",
            caption="../report/history.rst",
            category="Phase 5: training",
            subcategory="{run}",
        ),
        val_scores=f"{RESULTS}/runs/{{run}}/val_scores.parquet",
    threads: TORCH_THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/train/{{run}}.log",
    benchmark:
        f"{BENCH}/train/{{run}}.tsv"
    script:
        "../scripts/train.py"


rule evaluate:
    """Score the test split (and the dataset's parent negatives) once with the run's best
    checkpoint; metrics and plots."""
    input:
        run_config=rules.run_config.output[0],
        best=rules.train.output.best,
        history=rules.train.output.history,
        stamps=lambda wc: run_stamps(wc.run),
        flux_baseline=lambda wc: f"{RESULTS}/datasets/{RUN_CONFIGS[wc.run]['dataset']}/flux_baseline.json",
        negatives=lambda wc: parent_negative_stamps(RUN_CONFIGS[wc.run]["dataset"]),
    output:
        scores=f"{RESULTS}/runs/{{run}}/scores.parquet",
        metrics=report(
            f"{RESULTS}/runs/{{run}}/metrics.json",
            caption="../report/metrics.rst",
            category="Phase 5: evaluation",
            subcategory="{run}",
        ),
        roc=report(
            f"{RESULTS}/runs/{{run}}/roc.png",
            caption="../report/roc.rst",
            category="Phase 5: evaluation",
            subcategory="{run}",
        ),
        hist=report(
            f"{RESULTS}/runs/{{run}}/score_hist.png",
            caption="../report/score_hist.rst",
            category="Phase 5: evaluation",
            subcategory="{run}",
        ),
        top_negatives=report(
            f"{RESULTS}/runs/{{run}}/top_negatives.png",
            caption="../report/top_negatives.rst",
            category="Phase 5: evaluation",
            subcategory="{run}",
        ),
    threads: TORCH_THREADS
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/evaluate/{{run}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{run}}.tsv"
    script:
        "../scripts/evaluate.py"

