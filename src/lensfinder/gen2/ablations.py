"""The comparison's runs: gen2, gen3 and gen3 with one gen2 setting switched on at a time.

Torch-free on purpose: the Snakefile imports it at parse time to add the ablation runs to
the DAG (importing torch there costs seconds on every Snakemake start).
"""

from __future__ import annotations

import copy


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` updated by ``override`` at every level of nested dicts (new dict)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def ablation_name(baseline: str, factor: str) -> str:
    return f"{baseline}_with_{factor}"


def ablation_runs(runs: dict, compare: dict | None) -> dict:
    """{run name: run config} of the comparison's ablations: each is the ``baseline`` run
    with one factor's settings deep-merged over it (``compare.ablations.<factor>``)."""
    if not compare:
        return {}
    base = compare["baseline"]
    if base not in runs:
        raise KeyError(f"compare.baseline {base!r} is not a run (runs: {', '.join(runs)})")
    return {ablation_name(base, f): deep_merge(runs[base], o) for f, o in compare.get("ablations", {}).items()}


def comparison_rows(compare: dict) -> list[dict]:
    """The runs of the comparison in table order: baseline, each ablation, reference."""
    base = compare["baseline"]
    rows = [{"run": base, "role": "baseline", "factor": None}]
    rows += [{"run": ablation_name(base, f), "role": "ablation", "factor": f} for f in compare.get("ablations", {})]
    rows.append({"run": compare["reference"], "role": "reference", "factor": "all"})
    return rows


def replicate_name(run: str, k: int) -> str:
    """The k-th seed (1-based) of ``run``: the first keeps the run's own name."""
    return run if k == 1 else f"{run}_rep{k}"


def seed_replicates(runs: dict, default_seed: int) -> tuple[dict, dict]:
    """Expand ``runs.<run>.seeds`` into one trained run per seed.

    Returns ({instance name: run config with its ``seed``}, {run: [instance names]}). A run
    without ``seeds`` trains once with ``default_seed`` (the config's ``seed``). The seeds
    themselves (distinct integers, at least one) are checked by the config schema."""
    configs, replicates = {}, {}
    for run, cfg in runs.items():
        seeds = cfg.get("seeds", [default_seed])
        base = {k: v for k, v in cfg.items() if k != "seeds"}
        replicates[run] = [replicate_name(run, k) for k in range(1, len(seeds) + 1)]
        for name, seed in zip(replicates[run], seeds):
            if name in configs or (name != run and name in runs):
                raise ValueError(f"runs.{run}.seeds: replicate name {name!r} is already a run")
            configs[name] = {**base, "seed": seed}
    return configs, replicates
