"""Rule report: render Snakemake's own report of report_inputs into the rule's output."""
import subprocess
import sys

with open(snakemake.log[0], "w") as log:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", snakemake.params.snakefile, "--nolock",
           "--report", snakemake.output[0]]
    for f in snakemake.params.configfiles:
        cmd += ["--configfile", f]
    cmd += ["--", "report_inputs"]
    print(" ".join(cmd), file=log, flush=True)
    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
if rc:
    raise SystemExit(f"snakemake --report failed (exit {rc}); see {snakemake.log[0]}")
