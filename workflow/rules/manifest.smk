# Phase 4a: one injection manifest per named dataset.


rule manifest:
    """Injection manifest of one dataset (labels, control strategy, splits, lens/source
    parameters, per-row seeds) and its leakage audit."""
    input:
        parent=rules.parent_lrg.output.parent,
        known_lenses=KNOWN_LENSES,
        past_false_positives=lambda wc: past_false_positives_input(wc.dataset),
    output:
        manifest=f"{RESULTS}/datasets/{{dataset}}/manifest.parquet",
        audit=report(
            f"{RESULTS}/datasets/{{dataset}}/manifest_audit.json",
            caption="../report/manifest_audit.rst",
            category="Phase 4a: manifests",
            subcategory="{dataset}",
        ),
    params:
        dataset=lambda wc: dataset_params(wc.dataset),
        bench_region=BENCH_REGION_PARAMS,  # held out for the test bench: no row comes from it
        lensable=lambda wc: lensable_criteria(wc.dataset),  # lensable_hosts only
        seed=config["seed"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/manifest/{{dataset}}.log",
    benchmark:
        f"{BENCH}/manifest/{{dataset}}.tsv"
    script:
        "../scripts/manifest.py"
