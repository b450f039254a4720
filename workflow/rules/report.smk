# Snakemake's own HTML report over every report()-tagged product.

rule report_inputs:
    """Every product the report shows (the DAG `snakemake --report` renders)."""
    input:
        rules.parent_lrg.output.summary,
        expand(f"{RESULTS}/datasets/{{dataset}}/{{f}}", dataset=DATASETS,
               f=["manifest_audit.json", "stamps_report.json", "gallery.png", "injection.png", "flux_baseline.json",
                  "populations.png"]),
        [f"{RESULTS}/datasets/{d}/matching_audit.json" for d in DATASETS if matched_after_injection(d)],
        expand(f"{RESULTS}/runs/{{run}}/{{f}}", run=RUNS,
               f=["history.json", "metrics.json", "roc.png", "score_hist.png", "top_negatives.png"]),
        rules.candidates.output,
        GEN2_REPORT_INPUTS,
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
