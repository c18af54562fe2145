# Two commands do everything on a fresh machine: `make screen` and `make test`.
# Both create .venv themselves; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= 2

.PHONY: screen test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $@

# The embedded default screen (config.yaml): all of CoRE MOF 2019-ASR, local executor.
# Outputs: results/core2019-asr/{ranked,flagged,failures}.csv, gcmc/, report.html.
# After a crash or kill, `make screen` again resumes (run `.venv/bin/snakemake --unlock` first
# if snakemake says the directory is locked).
# SLURM_CONF=/dev/null: a local run never asks SLURM anything, but snakemake loads the SLURM
# plugin, which runs `scontrol show config` at start; where SLURM's client is installed and its
# slurm.conf names a controller that does not answer, that waits 10 s for nothing.
screen: $(STAMP)
	SLURM_CONF=/dev/null PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES) --configfile config.yaml \
		--rerun-incomplete --printshellcmds

# pytest, then lint and formatting: Python (ruff), the Snakefile and rules (snakefmt)
test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakefmt --check Snakefile workflow/

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakefmt --check Snakefile workflow/

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
