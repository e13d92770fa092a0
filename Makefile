# make reproduce | make test | make test-slow | make lint | make clean     (SCALE=smoke|default|paper)
# make status EXPERIMENT=<claim>: done, failed and missing jobs of that claim's sweep at SCALE
# make reproduce JOBS=n: n claims' sweeps at once (default 2, one per core of a laptop)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= default
JOBS ?= 2
# the longest sweeps first, so that JOBS > 1 keeps every core busy to the end
EXPERIMENTS := bbdd_cloud_kl bbdd_thin ptw ptw_order bbdd_learned bbdd_bias bbdd pad lcw lcw_learned ptw_learned ptw_bias gaussian_baseline bbdd_delta lcw_cube bbdd_cloud lcw_control work_precision_sphere ptw_flow lcw_score_error bbdd_score_error ptw_score_error work_precision_product work_precision
SWEEPS := $(addprefix sweep-,$(EXPERIMENTS))
# Every input of a sweep's records (the package, the configs, the dependencies): a sweep whose
# jobs were all done under the same fingerprint is skipped without starting Python.
# (sha256sum, or shasum on macOS; without either the fingerprint is empty and nothing is skipped)
FINGERPRINT := $(shell cat pyproject.toml $$(find configs src -type f \( -name '*.py' -o -name '*.yaml' \) | LC_ALL=C sort) | { sha256sum 2>/dev/null || shasum -a 256 2>/dev/null; } | cut -c1-16)

.PHONY: reproduce sweep report status test test-slow lint clean venv $(SWEEPS)

venv: $(STAMP)

# The environment is rebuilt when pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

reproduce: $(STAMP)
	@$(MAKE) --no-print-directory -j$(JOBS) sweep
	@$(MAKE) --no-print-directory report

sweep: $(SWEEPS)

# One claim's sweep. After the sweep, the app writes runs/<claim>/.done-<scale> (the fingerprint
# and the number of record files) if the status survey finds every job done, none failed or
# missing; while both still hold, the sweep is skipped. Any other case runs the sweep, whose
# cached jobs cost no compute.
$(SWEEPS): sweep-%: $(STAMP)
	@done=runs/$*/.done-$(SCALE); count() { find runs/$* -name records.parquet 2>/dev/null | wc -l | tr -d ' '; }; \
	if [ -n "$(FINGERPRINT)" ] && [ -f $$done ] && [ "$$(cat $$done)" = "$(FINGERPRINT) $$(count)" ]; then \
		echo "$*: every job done, nothing changed since ($$done)"; \
	else \
		rm -f $$done; DIFFUSION_RATES_DONE="$$done $(FINGERPRINT)" \
			$(BIN)/diffusion-rates -m experiment=$* scale=$(SCALE) || exit 1; \
	fi

report: $(STAMP)
	$(BIN)/python scripts/report.py --scale $(SCALE)

status: $(STAMP)
	@test -n "$(EXPERIMENT)" || { echo "usage: make status EXPERIMENT=<claim> [SCALE=...]"; exit 2; }
	$(BIN)/diffusion-rates-status experiment=$(EXPERIMENT) scale=$(SCALE)

test: $(STAMP)
	$(BIN)/pytest -q -n auto --dist loadfile  # one worker per core; a test file stays on one worker

test-slow: $(STAMP)
	$(BIN)/pytest -q -n auto --dist loadfile -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests experiments scripts
	$(BIN)/ruff format --check src tests experiments scripts

clean:
	rm -rf runs .pytest_cache .ruff_cache
