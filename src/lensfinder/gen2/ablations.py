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
