# The sim-to-real check (lensfinder.real_lenses): a trained run scores catalogued lenses
# and random parent galaxies, all cut by the cutout service; recall at the random sample's
# FPR thresholds. `snakemake real_lenses` (needs the network on real data).

from lensfinder.real_lenses import RealLensesConfig

REAL = RealLensesConfig.from_dict(config.get("real_lenses"))
REAL_RUN = REAL.run or CANDIDATE_RUN
if RUNS and REAL_RUN not in RUN_CONFIGS:
    raise ValueError(f"real_lenses.run: {REAL_RUN!r} is not a run of this config (runs: {', '.join(RUNS)})")
REAL_DATASET = RUN_CONFIGS[REAL_RUN]["dataset"] if REAL_RUN in RUN_CONFIGS else None
REAL_DIR = f"{RESULTS}/real_lenses/{REAL_RUN}"



rule real_lens_targets:
    """Catalogued lenses in the footprint and a random background sample, as one manifest."""
    input:
        unpack(lambda wc: real_lens_background(REAL, REAL_DATASET)),
        lenses=REAL.lenses or KNOWN_LENSES,
    output:
        manifest=f"{REAL_DIR}/targets.parquet",
        audit=f"{REAL_DIR}/targets.json",
    params:
        real_lenses=real_lens_params(REAL, "lenses", "gradings", "types", "footprint", "n_random", "random_positions"),
        seed=config["seed"],
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/real_lenses/targets.log",
    script:
        "../scripts/real_lens_targets.py"


rule real_lens_stamps:
    """Every target through the cutout service (cached: nothing is fetched twice; a killed
    job resumes from the cache), cut as the run's training stamps, nothing injected."""
    input:
        manifest=rules.real_lens_targets.output.manifest,
    output:
        stamps=f"{REAL_DIR}/stamps/part-1-of-1.parquet",
        report=f"{REAL_DIR}/stamps/part-1-of-1.report.json",
    params:
        inject=inject_params(REAL_DATASET) if REAL_DATASET else {},
        coadd_dir=SKY.coadd_dir,
        cutouts=canonical(dataclasses.replace(CUTOUTS, source="service").as_params()),
    resources:
        mem_mb=6000,
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/real_lenses/stamps.log",
    benchmark:
        f"{BENCH}/real_lenses/stamps.tsv"
    script:
        "../scripts/negative_stamps.py"


rule real_lenses:
    """Recall of the known lenses at the random sample's FPR thresholds, with intervals, and
    the highest- and lowest-scored lenses."""
    input:
        run_config=f"{RESULTS}/runs/{REAL_RUN}/run_config.json",
        best=f"{RESULTS}/runs/{REAL_RUN}/best.pt",
        stamps=rules.real_lens_stamps.output.stamps,
        targets=rules.real_lens_targets.output.audit,
    output:
        scores=f"{REAL_DIR}/scores.parquet",
        summary=report(
            f"{REAL_DIR}/summary.json",
            caption="../report/real_lenses_summary.rst",
            category="Real lenses",
        ),
        png=report(
            f"{REAL_DIR}/gallery.png",
            caption="../report/real_lenses_gallery.rst",
            category="Real lenses",
        ),
    params:
        real_lenses=real_lens_params(REAL, "n_boot", "gallery_size"),
        seed=config["seed"],
        mock=SKY.mock,
    threads: TORCH_THREADS
    conda:
        "../../envs/lensfinder.yaml"
    log:
        f"{LOGS}/real_lenses/real_lenses.log",
    benchmark:
        f"{BENCH}/real_lenses/real_lenses.tsv"
    script:
        "../scripts/real_lenses.py"
