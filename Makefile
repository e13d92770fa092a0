# make reproduce | make test | make test-slow | make lint | make clean     (SCALE=smoke|default|paper)
# make status EXPERIMENT=<claim>: done, failed and missing jobs of that claim's sweep at SCALE
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= default
EXPERIMENTS := gaussian_baseline bbdd bbdd_cloud bbdd_cloud_kl bbdd_delta bbdd_score_error lcw lcw_cube lcw_control lcw_score_error pad ptw ptw_flow

.PHONY: reproduce sweep report status test test-slow lint clean venv

venv: $(STAMP)

# The environment is rebuilt when pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

reproduce: sweep report

sweep: $(STAMP)
	@for exp in $(EXPERIMENTS); do \
		$(BIN)/diffusion-rates -m experiment=$$exp scale=$(SCALE) || exit 1; \
	done

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
