# scoresep: two commands set up a fresh machine: `make install` then `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data/minislakh
CACHE  ?= data/cache
SEED   ?= 0

.PHONY: help install test test-full lint demo reproduce report clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# The two GM soundfont packages give `scoresep synth --soundfonts all` its timbre variety (FluidR3_GM.sf2 and
# MuseScore_General_Full.sf3 beside pretty_midi's TimGM6mb): 186 MiB download, 224 MiB installed, 8-13 s here.
# Optional: without them (no root, no apt, no network) synth still works with TimGM6mb alone.
install:  ## create .venv and install scoresep with its test extras (+ libfluidsynth3 and GM soundfonts when root on Debian)
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		if ! ldconfig -p | grep -q libfluidsynth.so.3; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfluidsynth3; \
		fi; \
		soundfonts=""; \
		for pkg in fluid-soundfont-gm musescore-general-soundfont; do \
			dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || soundfonts="$$soundfonts $$pkg"; \
		done; \
		if [ -n "$$soundfonts" ]; then \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$soundfonts; } \
				|| echo "warning: could not install$$soundfonts (scoresep synth then finds fewer soundfonts)"; \
		fi; \
	fi
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'

test:  ## fast suite (< 10 min on 2 CPU cores)
	$(BIN)/python -m pytest -q

test-full:  ## fast suite plus the slow checks
	$(BIN)/python -m pytest -q -m 'not gpu'

lint:  ## ruff
	$(BIN)/ruff check scoresep tests benchmarks

demo:  ## synthesise a mini-Slakh and build its cache under data/
	@if [ -e $(DATA) ]; then echo "$(DATA) exists: kept as it is (synth never writes into a dataset; remove it to render afresh)"; \
	else $(BIN)/scoresep synth --out $(DATA) --tracks 48 --seconds 30 --seed 0; fi
	$(BIN)/scoresep prepare --root $(DATA) --cache $(CACHE)

# SEED=N trains every row with another seed on the same data; seeds other than 0 go to results/seed<N>.
reproduce:  ## every row of the paper's tables on mini-Slakh (about 43 min on 2 cores with bf16) -> results/report.md
	$(BIN)/scoresep reproduce --preset mini --seed $(SEED) --out $(if $(filter 0,$(SEED)),results,results/seed$(SEED))

report:  ## re-render results/report.md, the CSVs and the chart from results/
	$(BIN)/scoresep report results

clean:  ## remove caches and build leftovers (never data/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
