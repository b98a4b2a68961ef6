# scoresep: two commands set up a fresh machine: `make install` then `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data/minislakh
CACHE  ?= data/cache

.PHONY: help install test test-full lint demo reproduce report clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## create .venv and install scoresep with its test extras (+ libfluidsynth3 when root on Debian)
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		if ! ldconfig -p | grep -q libfluidsynth.so.3; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfluidsynth3; \
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
	$(BIN)/scoresep synth --out $(DATA) --tracks 48 --seconds 30 --seed 0
	$(BIN)/scoresep prepare --root $(DATA) --cache $(CACHE)

reproduce:  ## every row of the paper's tables on mini-Slakh (<= 45 min on 2 cores) -> results/report.md
	$(BIN)/scoresep reproduce --preset mini --out results

report:  ## re-render results/report.md, the CSVs and the chart from results/
	$(BIN)/scoresep report results

clean:  ## remove caches and build leftovers (never data/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
