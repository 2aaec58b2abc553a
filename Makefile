# dentsynth: `make demo` runs the whole pipeline on the built-in demo archive; `make test` runs the tests.
# Both create .venv and install everything on a fresh machine first, from requirements.lock (every
# package pinned with its sha256); `make lock` updates the lock (docs/reproducibility.md).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
LOCK := requirements.lock
# the install reruns when the lock or pyproject.toml changes (the stamp's name is their hash)
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml | sha1sum | cut -c1-12)
# pip-compile runs in a venv of its own: the tool that writes the lock is not part of what it pins
LOCK_VENV := .venv-lock
PIP_TOOLS := pip-tools==7.6.2

export PATH := $(CURDIR)/$(BIN):$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install lock demo test test-fast bench clean-demo

install: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# re-resolve pyproject.toml's ranges: pins already in the lock stay unless a range excludes them;
# `make lock UPGRADE=1` moves every package to its newest allowed release (then rerun `make demo`
# and commit requirements.lock with the dvc.lock it gives)
lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install -q $(PIP_TOOLS))
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links --extra test --build-deps-for editable \
	  $(if $(UPGRADE),--upgrade) -o $(LOCK) pyproject.toml

demo: install
	dvc repro
	@echo
	@echo "Done. Open in a browser:"
	@for f in reports/quality.html reports/audit.html reports/crops.html reports/reader_study/*.html; do \
	  test -f "$$f" && echo "  $$f"; done; true
	@echo "  (the reader study's passphrase, for the study lead: data/reader_study/passphrase.txt)"
	@echo "The release researchers receive (a BagIt folder and its .tar.gz) is in data/release/; check it with:"
	@for r in data/release/*.tar.gz data/release/*/; do \
	  test -e "$$r" && echo "  $(BIN)/python -m stages.verify_release $${r%/}"; done; true
	@echo "How a researcher fetches a release (dvc import by git tag): README, 'Handing a release over'."

test: install
	pytest --durations=25

# the tests without the `slow` mark (end-to-end runs, dvc-driven copies): a few minutes on 2 cores
test-fast: install
	pytest -m 'not slow'

bench: install
	python -m bench.run

clean-demo:
	rm -rf data/demo_raw data/ingest_inventory.json data/ingested data/audit data/crops data/variants data/split data/synthetic data/eval data/release
