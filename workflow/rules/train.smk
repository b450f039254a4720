# Phase 5: training and evaluation, one of each per named run.


rule train:
    """Train one run (DDP via torchrun when nproc > 1). Resumes from its checkpoint
    directory after a kill; a run directory from another config refuses to resume."""
    input:
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
    params:
        run=lambda wc: run_params(wc.run),
        seed=config["seed"],
        nproc=lambda wc: RUN_CONFIGS[wc.run].get("nproc", 1),
        dataset_dir=lambda wc: f"{RESULTS}/datasets/{RUN_CONFIGS[wc.run]['dataset']}",
        out_dir=lambda wc: f"{RESULTS}/runs/{wc.run}",
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../envs/train.yaml"
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/rules/train/{run}.tsv"
    script:
        "../scripts/train.py"


rule evaluate:
    """Score the test split once with the run's best checkpoint; metrics and plots."""
    input:
        best=rules.train.output.best,
        history=rules.train.output.history,
        stamps=lambda wc: run_stamps(wc.run),
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
    params:
        run_config=lambda wc: f"{RESULTS}/runs/{wc.run}/run_config.json",
        dataset_dir=lambda wc: f"{RESULTS}/datasets/{RUN_CONFIGS[wc.run]['dataset']}",
        out_dir=lambda wc: f"{RESULTS}/runs/{wc.run}",
    threads: 2
    conda:
        "../../envs/train.yaml"
    log:
        "logs/evaluate/{run}.log",
    benchmark:
        "benchmarks/rules/evaluate/{run}.tsv"
    script:
        "../scripts/evaluate.py"


for _run in RUNS:

    rule:
        name:
            f"train_{_run}"
        input:
            expand(rules.evaluate.output, run=_run),
        default_target: False
