# dentsynth: `make demo` runs the whole pipeline on the built-in demo archive; `make test` runs the tests.
# Both create .venv and install everything on a fresh machine first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

export PATH := $(CURDIR)/$(BIN):$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-fast bench clean-demo

install: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: install
	dvc repro

test: install
	pytest --durations=25

# the tests without the `slow` mark (end-to-end runs, dvc-driven copies): a few minutes on 2 cores
test-fast: install
	pytest -m 'not slow'

bench: install
	python -m bench.run

clean-demo:
	rm -rf data/demo_raw data/ingest_inventory.json data/ingested data/audit data/crops data/variants data/split data/synthetic data/eval data/release
