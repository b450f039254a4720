"""Rule gen2_history: the user's gen2 history.json checked for the saturation signature.
A malformed file fails the rule with a one-line message naming file, epoch and key."""
import sys

from lensfinder.gen2.user_history import HistoryError, explain_gen2_history, read_gen2_history
from lensfinder.tables import write_json

sys.stderr = open(snakemake.log[0], "w")
try:
    res = explain_gen2_history(read_gen2_history(snakemake.input.history), snakemake.params.n_neg, snakemake.params.n_pos)
except HistoryError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.__stderr__.write(f"gen2_history: {exc}\n")
    raise SystemExit(2)
res["source"] = str(snakemake.input.history)
write_json(res, snakemake.output[0])
print(res["verdict"], file=sys.stderr)
