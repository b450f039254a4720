"""Rule report: render Snakemake's own report of report_inputs into the rule's output."""
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

out = Path(snakemake.output[0])
with open(snakemake.log[0], "w") as log, tempfile.TemporaryDirectory() as tmp:
    merged = Path(tmp) / "merged_config.yaml"
    merged.write_text(yaml.safe_dump(snakemake.params.config, sort_keys=True))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", snakemake.params.snakefile, "--nolock",
           "--report", str(out), "--configfile", str(merged), "--", "report_inputs"]
    print(" ".join(cmd), file=log, flush=True)
    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
if rc:
    raise SystemExit(f"snakemake --report failed (exit {rc}); see {snakemake.log[0]}")
