# The six answers and Snakemake's own HTML report over every report()-tagged product.

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


rule report_inputs:
    """Every product the report shows (the DAG `snakemake --report` renders)."""
    input:
        rules.parent_lrg.output.summary,
        expand(f"{RESULTS}/datasets/{{dataset}}/{{f}}", dataset=DATASETS,
               f=["manifest_audit.json", "stamps_report.json", "gallery.png", "flux_baseline.json"]),
        expand(f"{RESULTS}/runs/{{run}}/{{f}}", run=[r["run"] for r in COMPARE_ROWS],
               f=["history.json", "metrics.json", "roc.png", "score_hist.png", "ties.png", "overfitting.png",
                  "diagnostics.json"]),
        rules.gen2_history.output,
        rules.compare.output,
        rules.answers.output,
        rules.candidates.output,
    default_target: False


rule report:
    """results/report.html: Snakemake's report of report_inputs, rendered by `snakemake
    --report` with this invocation's merged config (every --configfile and --config, in one
    file: the nested run sees exactly what this one did). --nolock because this job runs
    inside the workflow that holds the lock."""
    input:
        rules.report_inputs.input,
    output:
        f"{RESULTS}/report.html",
    params:
        snakefile=workflow.main_snakefile,
        config=canonical(config),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/report.log",
    script:
        "../scripts/report.py"
