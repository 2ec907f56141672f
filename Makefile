# One-command set-up: every target creates/reuses .venv in the repository.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# torch comes first and pinned: `pip install torch==2.13.0` takes the CPU wheel on this machine's disk;
# an unpinned torch requested by another package would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=
# albumentations otherwise asks PyPI for updates at import time
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install demo test test-fast bench bench-quality clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,mlops,test-servers,deploy]" -c requirements/lock.txt
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/lgmsnet pipeline run --local --workspace demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/speed.py

bench-quality: install
	$(BIN)/python bench/quality.py

clean:
	rm -rf $(VENV) demo .pytest_cache
