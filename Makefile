# lensfinder: two commands on a fresh machine.
#   make demo  -- create .venv if missing, install, run the workflow on the mock sky
#   make test  -- same install, then the test suite
#   make check -- same install, then the workflow lint and the fast tests (not slow, not workflow)
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
DEMO_TARGET ?= train_gen3
SNAKEMAKE_FLAGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.lensfinder-installed

.PHONY: demo test check install clean-results

install: $(STAMP)

$(STAMP): pyproject.toml envs/pip-constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lensfinder needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c envs/pip-constraints.txt -e '.[test]'
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_FLAGS) $(DEMO_TARGET)
	@echo
	@echo "Mock sky:        results/mock_sky/ (sweep/*.fits, coadd/<bri>/<brick>/*.fits.fz)"
	@echo "Parent sample:   results/phase3/parent_lrg.parquet (+ selection_summary.json)"
	@echo "Dataset:         results/datasets/v5_unpaired/ manifest.parquet, manifest_audit.json,"
	@echo "                 stamps/part-*.parquet, stamps_report.json, gallery.png, injection.png,"
	@echo "                 matched/ (phase 4d), matching_audit.json, populations.png, flux_baseline.json"
	@echo "gen3 run:        results/runs/gen3/history.json (per-epoch validation metrics)"
	@echo "gen3 test set:   results/runs/gen3/metrics.json, roc.png, score_hist.png, scores.parquet,"
	@echo "                 top_negatives.png (the highest-scored negatives of each population)"
	@echo
	@echo "Next: $(BIN)/snakemake --cores $(CORES) compare report"
	@echo "      -> results/report.html (answers, comparison, diagnostics, candidates)"

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick check between edits: Snakemake's lint and every test not marked slow or workflow.
# `make test` (what CI runs) still runs everything.
check: install
	$(BIN)/snakemake --lint
	$(BIN)/python -m pytest -q -m "not slow and not workflow" $(PYTEST_ARGS)

clean-results:
	rm -rf results .snakemake
