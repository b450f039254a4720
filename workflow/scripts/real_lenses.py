"""Rule real_lenses: recall of known lenses at random-sample FPR thresholds (see lensfinder.real_lenses)."""
import logging
import sys

from lensfinder.real_lenses import RealLensesConfig, write_real_lenses

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i, p, o = snakemake.input, snakemake.params, snakemake.output
s = write_real_lenses(i.run_config, i.best, [i.stamps], i.targets, RealLensesConfig.from_dict(p.real_lenses), p.seed,
                      p.mock, o.scores, o.summary, o.png)
logging.info("%d lenses, %d random scored; recall %s", s["n_lenses_scored"], s["n_random_scored"],
             [(r["key"], r["recall"]) for r in s["recall"] or []])
