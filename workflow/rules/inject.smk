# Phase 4c: stamps with injected arcs, N shards per dataset (Snakemake scatter/gather), so
# shards run in parallel locally or as separate cluster jobs.


scattergather:
    inject=config["inject"]["shards"],


rule inject:
    """Cut the stamps of one shard of a dataset's manifest (whole bricks) and inject arcs."""
    input:
        manifest=rules.manifest.output.manifest,
        coadds=lambda wc: coadd_inputs(),
        psf_dir=lambda wc: psf_dir_input(wc.dataset),
    output:
        stamps=f"{RESULTS}/datasets/{{dataset}}/stamps/part-{{scatteritem}}.parquet",
        report=f"{RESULTS}/datasets/{{dataset}}/stamps/part-{{scatteritem}}.report.json",
    params:
        inject=lambda wc: inject_params(wc.dataset),
        dataset=lambda wc: dataset_params(wc.dataset),  # its priors: redraws of unrecognisable systems
        seed=config["seed"],
        coadd_dir=SKY.coadd_dir,
        cutouts=canonical(CUTOUTS.as_params()),
        psf_service=lambda wc: psf_service_params(wc.dataset),
    resources:
        mem_mb=6000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/inject/{{dataset}}/{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/inject/{{dataset}}/{{scatteritem}}.tsv"
    script:
        "../scripts/inject.py"


rule stamps_report:
    """Gather a dataset's shard reports: stamps written and skipped per reason."""
    input:
        reports=gather.inject(f"{RESULTS}/datasets/{{{{dataset}}}}/stamps/part-{{scatteritem}}.report.json"),
    output:
        report=report(
            f"{RESULTS}/datasets/{{dataset}}/stamps_report.json",
            caption="../report/stamps_report.rst",
            category="Phase 4c: stamps",
            subcategory="{dataset}",
        ),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/stamps_report/{{dataset}}.log",
    benchmark:
        f"{BENCH}/stamps_report/{{dataset}}.tsv"
    script:
        "../scripts/stamps_report.py"


rule match_controls:
    """Phase 4d: keep the control candidates whose observed aperture fluxes and colours
    match the injected positives' (datasets with control: matched_after_injection)."""
    input:
        stamps=lambda wc: injected_stamps(wc.dataset),
    output:
        stamps=[f"{RESULTS}/datasets/{{dataset}}/matched/part-{i}-of-{config['inject']['shards']}.parquet"
                for i in range(1, config["inject"]["shards"] + 1)],
        audit=report(
            f"{RESULTS}/datasets/{{dataset}}/matching_audit.json",
            caption="../report/matching_audit.rst",
            category="Phase 4d: matched controls",
            subcategory="{dataset}",
        ),
    params:
        controls_per_positive=lambda wc: controls_per_positive(wc.dataset),
        stamp_compression=lambda wc: stamp_compression(wc.dataset),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/match_controls/{{dataset}}.log",
    benchmark:
        f"{BENCH}/match_controls/{{dataset}}.tsv"
    script:
        "../scripts/match_controls.py"


rule gallery:
    """Colour gallery of a dataset's stamps: positives next to their controls."""
    input:
        stamps=dataset_stamps,
    output:
        png=report(
            f"{RESULTS}/datasets/{{dataset}}/gallery.png",
            caption="../report/gallery.rst",
            category="Phase 4c: stamps",
            subcategory="{dataset}",
        ),
    params:
        n_pairs=config["inject"]["gallery_pairs"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/gallery/{{dataset}}.log",
    benchmark:
        f"{BENCH}/gallery/{{dataset}}.tsv"
    script:
        "../scripts/gallery.py"


rule population_gallery:
    """Controls of a dataset by population: the false-positive look-alikes next to ordinary LRGs."""
    input:
        stamps=dataset_stamps,
    output:
        png=report(
            f"{RESULTS}/datasets/{{dataset}}/populations.png",
            caption="../report/populations.rst",
            category="Phase 4c: stamps",
            subcategory="{dataset}",
        ),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/population_gallery/{{dataset}}.log",
    benchmark:
        f"{BENCH}/population_gallery/{{dataset}}.tsv"
    script:
        "../scripts/population_gallery.py"


rule injection_figure:
    """Distributions of a dataset's injected positives: theta_E, total magnification, arc
    S/N, number of images, source magnitude."""
    input:
        stamps=dataset_stamps,
    output:
        png=report(
            f"{RESULTS}/datasets/{{dataset}}/injection.png",
            caption="../report/injection.rst",
            category="Phase 4c: stamps",
            subcategory="{dataset}",
        ),
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/injection_figure/{{dataset}}.log",
    benchmark:
        f"{BENCH}/injection_figure/{{dataset}}.tsv"
    script:
        "../scripts/injection_figure.py"


rule parent_negatives:
    """Extra test negatives (datasets.<name>.parent_negatives): the parent galaxies of the
    dataset's test region that no training or validation row uses and no test stamp holds."""
    input:
        parent=rules.parent_lrg.output.parent,
        manifest=rules.manifest.output.manifest,
        stamps=dataset_stamps,
        known_lenses=KNOWN_LENSES,
    output:
        manifest=f"{RESULTS}/datasets/{{dataset}}/parent_negatives/manifest.parquet",
        audit=report(
            f"{RESULTS}/datasets/{{dataset}}/parent_negatives/audit.json",
            caption="../report/parent_negatives.rst",
            category="Phase 4c: stamps",
            subcategory="{dataset}",
        ),
    params:
        dataset=lambda wc: dataset_params(wc.dataset),
        parent_negatives=lambda wc: parent_negatives_params(wc.dataset),
        bench_region=BENCH_REGION_PARAMS,
        seed=config["seed"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/parent_negatives/{{dataset}}.log",
    benchmark:
        f"{BENCH}/parent_negatives/{{dataset}}.tsv"
    script:
        "../scripts/parent_negatives.py"


rule parent_negative_stamps:
    """Cutouts of one shard of a dataset's parent negatives, by the phase-4c code with
    nothing injected (the pixels its runs' test split is cut from)."""
    input:
        manifest=rules.parent_negatives.output.manifest,
        coadds=lambda wc: coadd_inputs(),
    output:
        stamps=f"{RESULTS}/datasets/{{dataset}}/parent_negatives/part-{{scatteritem}}.parquet",
        report=f"{RESULTS}/datasets/{{dataset}}/parent_negatives/part-{{scatteritem}}.report.json",
    params:
        inject=lambda wc: inject_params(wc.dataset),
        coadd_dir=SKY.coadd_dir,
        cutouts=canonical(CUTOUTS.as_params()),
    resources:
        mem_mb=6000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/parent_negative_stamps/{{dataset}}/{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/parent_negative_stamps/{{dataset}}/{{scatteritem}}.tsv"
    script:
        "../scripts/negative_stamps.py"


rule stamps:
    """Target: manifests, audits, stamps, reports, galleries and injection figures of every dataset."""
    input:
        expand(rules.manifest.output.audit, dataset=DATASETS),
        expand(rules.stamps_report.output.report, dataset=DATASETS),
        expand(rules.gallery.output.png, dataset=DATASETS),
        expand(rules.injection_figure.output.png, dataset=DATASETS),
        expand(rules.population_gallery.output.png, dataset=DATASETS),
        [rules.match_controls.output.audit.format(dataset=d) for d in DATASETS if matched_after_injection(d)],
        # every shard a dataset's runs read, so a lost one is rebuilt
        [stamps_of(d) for d in DATASETS],


rule flux_baseline:
    """How much of a dataset a classifier that never sees pixels solves (aperture fluxes
    and colours only): the "extra flux" shortcut of paired controls, measured."""
    input:
        stamps=dataset_stamps,
    output:
        report(
            f"{RESULTS}/datasets/{{dataset}}/flux_baseline.json",
            caption="../report/flux_baseline.rst",
            category="Diagnostics",
            subcategory="flux-only baselines",
        ),
    params:
        seed=config["seed"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/flux_baseline/{{dataset}}.log",
    benchmark:
        f"{BENCH}/flux_baseline/{{dataset}}.tsv"
    script:
        "../scripts/flux_baseline.py"
