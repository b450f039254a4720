"""Rule learning_curve: the run's bench metrics against training lenses (see lensfinder.learning_curve)."""
import logging
import sys

from lensfinder.learning_curve import CurvePoint, write_learning_curve

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
metrics, histories = iter(snakemake.input.bench_metrics), iter(snakemake.input.histories)  # points, then seeds, in order
points = [CurvePoint(p["fraction"], p["runs"], [next(metrics) for _ in p["runs"]], [next(histories) for _ in p["runs"]])
          for p in snakemake.params.points]
curve = write_learning_curve(points, snakemake.params.run, snakemake.output.json, snakemake.output.png)
for p in curve["points"]:
    logging.info("fraction %g: %s training lenses, bench %s", p["fraction"], p["n_train_lenses"], p["bench"])
