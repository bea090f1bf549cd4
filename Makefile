# Fresh machine: `make demo` (main job) and `make test` (test suite) create .venv themselves.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

.PHONY: venv demo test lint clean

$(BIN)/biotune: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/biotune

venv: $(BIN)/biotune

# The demo needs BIOSSES: `data fetch` keeps it if the data home already has it verified, else downloads it
# (asking to accept its GPL-3.0 terms; `make demo ACCEPT_LICENSES=1` accepts them without asking).
demo: venv
	@echo "make demo: the demo needs BIOSSES; checking the data home (fetching BIOSSES if it is not there)"
	$(OFFLINE) $(BIN)/biotune data fetch BIOSSES $(if $(ACCEPT_LICENSES),--accept-licenses)
	$(OFFLINE) $(BIN)/biotune study examples/demo.yaml --output runs/demo

test: venv
	$(OFFLINE) $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs
