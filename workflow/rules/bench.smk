# The test bench (lensfinder.bench): built from the bench region, which no dataset uses, by
# its own rules; every run is scored on the same bench rows. Changing a run rescores only
# that run; changing the bench's priors or size rebuilds the bench and rescores every run;
# changing how it is scored (sky_rates, prevalence, selection_fpr) only rescores.


rule bench_manifest:
    """The bench's rows: every parent LRG of the bench region as it is, lenses injected into
    some of its ordinary LRGs with the bench's priors, unlensed-source copies."""
    input:
        parent=rules.parent_lrg.output.parent,
        known_lenses=KNOWN_LENSES,
    output:
        manifest=f"{RESULTS}/bench/manifest.parquet",
        audit=report(
            f"{RESULTS}/bench/audit.json",
            caption="../report/bench_audit.rst",
            category="Test bench",
        ),
    params:
        bench=BENCH_MANIFEST_PARAMS,
        seed=config["seed"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/bench/manifest.log",
    benchmark:
        f"{BENCH}/bench/manifest.tsv"
    script:
        "../scripts/bench_manifest.py"


rule bench_stamps:
    """Phase 4c on one shard of the bench manifest: cutouts, arcs injected into the lens rows."""
    input:
        manifest=rules.bench_manifest.output.manifest,
        coadds=lambda wc: coadd_inputs(),
    output:
        stamps=f"{RESULTS}/bench/stamps/part-{{scatteritem}}.parquet",
        report=f"{RESULTS}/bench/stamps/part-{{scatteritem}}.report.json",
    params:
        inject=BENCH_INJECT_PARAMS,
        bench=BENCH_MANIFEST_PARAMS,  # its priors: redraws of unrecognisable systems
        seed=config["seed"],
        coadd_dir=SKY.coadd_dir,
        cutouts=canonical(CUTOUTS.as_params()),
    resources:
        mem_mb=6000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/bench/stamps/{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/bench/stamps/{{scatteritem}}.tsv"
    script:
        "../scripts/bench_stamps.py"


rule bench_score:
    """One run's best checkpoint scored on every bench row: sky-prevalence rates, per-population
    FPR, purity vs completeness and the selection function."""
    input:
        run_config=rules.run_config.output[0],
        best=rules.train.output.best,
        stamps=gather.inject(f"{RESULTS}/bench/stamps/part-{{scatteritem}}.parquet"),
    output:
        scores=f"{RESULTS}/runs/{{run}}/bench_scores.parquet",
        metrics=report(
            f"{RESULTS}/runs/{{run}}/bench_metrics.json",
            caption="../report/bench_metrics.rst",
            category="Test bench",
            subcategory="{run}",
        ),
        selection=report(
            f"{RESULTS}/runs/{{run}}/bench_selection.png",
            caption="../report/bench_selection.rst",
            category="Test bench",
            subcategory="{run}",
        ),
        purity=report(
            f"{RESULTS}/runs/{{run}}/bench_purity.png",
            caption="../report/bench_purity.rst",
            category="Test bench",
            subcategory="{run}",
        ),
    params:
        scoring=BENCH_SCORING_PARAMS,
    threads: TORCH_THREADS
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/bench/score/{{run}}.log",
    benchmark:
        f"{BENCH}/bench/score/{{run}}.tsv"
    script:
        "../scripts/bench_score.py"


# Per-run targets (`snakemake train_gen3`): every seed trained, evaluated on its own test
# split and scored on the bench, with what it trained on to look at.
for _run in RUNS:

    rule:
        name:
            f"train_{_run}"
        input:
            expand(rules.evaluate.output, run=REPLICATES.get(_run, [_run])),  # every seed
            expand(rules.bench_score.output, run=REPLICATES.get(_run, [_run])),  # ... on the test bench
            # the stamp shards it trained on: a shard deleted since is rebuilt (and the run
            # retrained), where a target of the run's products alone would see nothing to do
            run_stamps(_run),
            # what the run trained on, to look at: stamps report, galleries (lenses next to
            # controls; controls by population), injection figure
            expand(rules.stamps_report.output.report, dataset=RUN_CONFIGS[_run]["dataset"]),
            expand(rules.gallery.output.png, dataset=RUN_CONFIGS[_run]["dataset"]),
            expand(rules.population_gallery.output.png, dataset=RUN_CONFIGS[_run]["dataset"]),
            expand(rules.injection_figure.output.png, dataset=RUN_CONFIGS[_run]["dataset"]),
        default_target: False


if LEARNING_CURVE:
    # the curve's points in fraction order, the run itself (fraction 1) last
    LC_POINTS = [(point_name(LEARNING_CURVE["run"], k), float(f)) for k, f in enumerate(LEARNING_CURVE["fractions"], 1)]
    LC_POINTS.append((LEARNING_CURVE["run"], 1.0))

    rule learning_curve:
        """Bench metrics of the run trained on nested shares of its training split, against the
        number of training lenses, and validation AUC per epoch: JSON and a figure."""
        input:
            bench_metrics=[f"{RESULTS}/runs/{r}/bench_metrics.json" for p, _ in LC_POINTS for r in REPLICATES[p]],
            histories=[f"{RESULTS}/runs/{r}/history.json" for p, _ in LC_POINTS for r in REPLICATES[p]],
        output:
            json=f"{RESULTS}/learning_curve/learning_curve.json",
            png=report(
                f"{RESULTS}/learning_curve/learning_curve.png",
                caption="../report/learning_curve.rst",
                category="Test bench",
            ),
        params:
            run=LEARNING_CURVE["run"],
            points=[{"fraction": f, "runs": REPLICATES[p]} for p, f in LC_POINTS],
        conda:
            "../../envs/lensfinder.yaml"
        log:
            f"{LOGS}/learning_curve.log",
        script:
            "../scripts/learning_curve.py"
