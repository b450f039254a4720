# The gen2 case study (lensfinder.gen2): per-run diagnostics, the user's own gen2 history,
# the gen2-vs-gen3 comparison and the six written answers. Included by the Snakefile only
# when the config has a `compare` section; the pipeline stands without it.


rule diagnose:
    """Ties and saturation per epoch (stored dtype vs float32 logits), memorisation of
    paired twins, leakage, duplication factor and the overfitting view of one run."""
    input:
        run_config=rules.run_config.output[0],
        history=rules.train.output.history,
        val_scores=rules.train.output.val_scores,
        manifest=lambda wc: f"{RESULTS}/datasets/{RUN_CONFIGS[wc.run]['dataset']}/manifest.parquet",
        audit=lambda wc: f"{RESULTS}/datasets/{RUN_CONFIGS[wc.run]['dataset']}/manifest_audit.json",
        flux_baseline=lambda wc: f"{RESULTS}/datasets/{RUN_CONFIGS[wc.run]['dataset']}/flux_baseline.json",
    output:
        diagnostics=report(
            f"{RESULTS}/runs/{{run}}/diagnostics.json",
            caption="../report/diagnostics.rst",
            category="Diagnostics",
            subcategory="{run}",
        ),
        ties=report(
            f"{RESULTS}/runs/{{run}}/ties.png",
            caption="../report/ties.rst",
            category="Diagnostics",
            subcategory="{run}",
        ),
        overfitting=report(
            f"{RESULTS}/runs/{{run}}/overfitting.png",
            caption="../report/overfitting.rst",
            category="Diagnostics",
            subcategory="{run}",
        ),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/diagnose/{{run}}.log",
    script:
        "../scripts/diagnose.py"


rule gen2_history:
    """The user's own gen2 history.json checked for the bf16 saturation signature."""
    input:
        # a user's path is relative to the working directory; the default ships with lensfinder
        history=config["diagnose"].get("gen2_history")
        or workdir_relative("resources/gen2_history_request.json"),
    output:
        report(
            f"{RESULTS}/diagnostics/gen2_history_analysis.json",
            caption="../report/gen2_history.rst",
            category="Diagnostics",
            subcategory="your gen2 history",
        ),
    params:
        n_neg=config["diagnose"]["gen2_n_neg"],
        n_pos=config["diagnose"]["gen2_n_pos"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/diagnose/gen2_history.log",
    script:
        "../scripts/gen2_history.py"


rule compare:
    """gen2, gen3 and one-factor ablations side by side: per-run epoch tables and the
    summary of which factor moves tpr@fpr1e-4 / 1e-3, with intervals."""
    input:
        histories=[f"{RESULTS}/runs/{r['run']}/history.json" for r in COMPARE_ROWS],
        metrics=[f"{RESULTS}/runs/{r['run']}/metrics.json" for r in COMPARE_ROWS],
        diagnostics=[f"{RESULTS}/runs/{r['run']}/diagnostics.json" for r in COMPARE_ROWS],
        # the test scores of every seed of every configuration, for the bootstrap
        scores=[f"{RESULTS}/runs/{i}/scores.parquet" for r in COMPARE_ROWS for i in REPLICATES[r["run"]]],
        # ... and on the test bench, where every run is scored on the same rows (main table)
        bench_scores=[f"{RESULTS}/runs/{i}/bench_scores.parquet" for r in COMPARE_ROWS for i in REPLICATES[r["run"]]],
        bench_metrics=[f"{RESULTS}/runs/{i}/bench_metrics.json" for r in COMPARE_ROWS for i in REPLICATES[r["run"]]],
    output:
        json=f"{RESULTS}/compare/comparison.json",
        html=report(
            f"{RESULTS}/compare/comparison.html",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        png=report(
            f"{RESULTS}/compare/comparison.png",
            caption="../report/comparison_plot.rst",
            category="Comparison",
        ),
    params:
        rows=COMPARE_ROWS,
        replicates={r["run"]: REPLICATES[r["run"]] for r in COMPARE_ROWS},
        configs={r["run"]: canonical(RUN_CONFIGS[r["run"]]) for r in COMPARE_ROWS},
        sky_rates=BENCH_SCORING_PARAMS["sky_rates"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/compare.log",
    script:
        "../scripts/compare.py"


REFERENCE = COMPARE["reference"] if COMPARE else None
BASELINE = COMPARE["baseline"] if COMPARE else None


rule answers:
    """The six questions of the gen2 debug request, answered from this run's numbers."""
    input:
        comparison=rules.compare.output.json,
        diag_ref=f"{RESULTS}/runs/{REFERENCE}/diagnostics.json",
        diag_base=f"{RESULTS}/runs/{BASELINE}/diagnostics.json",
        user=rules.gen2_history.output[0],
    output:
        html=report(
            f"{RESULTS}/report/answers.html",
            caption="../report/answers.rst",
            category="Answers",
        ),
        json=f"{RESULTS}/report/answers.json",
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/answers.log",
    script:
        "../scripts/answers.py"


GEN2_REPORT_INPUTS = [
    *expand(f"{RESULTS}/runs/{{run}}/{{f}}", run=[r["run"] for r in COMPARE_ROWS],
            f=["ties.png", "overfitting.png", "diagnostics.json"]),
    *rules.gen2_history.output,
    *rules.compare.output,
    *rules.answers.output,
]
