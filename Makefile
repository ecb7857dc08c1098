# The two commands a newcomer needs:  make demo   and   make test
# Both create .venv and install everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench bench-edge bench-federated clean mutation planted-bugs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# PyTorch first and pinned: the CPU build on this disk, not a multi-GB CUDA download.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# the amml detector's numba kernels, compiled once into numba's cache (not in each test)
	$(BIN)/python -m amml.ops.detectors.kernels
	touch $(STAMP)

demo: $(STAMP)  ## run the example workflow end to end, then again fully cached
	$(BIN)/amml run examples/sensors/workflow.yaml
	$(BIN)/amml run examples/sensors/workflow.yaml
	$(BIN)/amml show
	$(BIN)/amml lineage evaluation
	$(BIN)/amml run examples/anomaly/workflow.yaml
	$(BIN)/amml artifact plot -o .amml/anomalies.png

test: $(STAMP)  ## lint and run the whole test suite
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/pytest -q

bench: $(STAMP)  ## engine overhead, tracking throughput, serving
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/tracking.py
	$(BIN)/python benchmarks/ledger.py
	$(BIN)/python benchmarks/integrity.py
	$(BIN)/python benchmarks/sources.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/amml bench nab --data ../shared/datasets/nab --out .amml/nab-results
	$(BIN)/python benchmarks/skab.py --data ../shared/datasets/skab
	$(BIN)/python benchmarks/explain.py
	$(BIN)/python benchmarks/drift.py --fit 2000 --reference 1500 --live 3000 --drift 1500
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/dashboard.py

bench-edge: $(STAMP)  ## ONNX fp32/int8 per model kind on ETTh1: size, latency, accuracy, runner memory
	$(BIN)/python benchmarks/edge.py --epochs 1 --stride 8

bench-federated: $(STAMP)  ## Flower deployment on 8 stations (slow: tens of minutes on 2 cores)
	$(BIN)/python benchmarks/federated.py

planted-bugs: $(STAMP)  ## plant each bug of the headline-claims table; a test must fail
	$(BIN)/python scripts/planted_bugs.py

mutation: $(STAMP)  ## mutation score of the modules behind the headline claims (slow)
	# one BLAS/OpenMP thread: a forked child of a process whose thread pools ran can deadlock
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/mutmut run --max-children 2 || true
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python scripts/mutation_score.py --goal 85

clean:
	rm -rf $(VENV) .amml .pytest_cache .ruff_cache mutants
