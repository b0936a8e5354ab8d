# Every target sets up .venv itself (python3 -m venv + pip install -e .[test,plot])
# the first time, and again whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# numba's disk cache checks only the file that defines a kernel, not the files of the
# kernels it calls: a cache folder per version of the numba backend's sources (and of the
# specs, whose codes its kernels read) keeps an edit from running stale machine code.
NUMBA_SOURCES := $(shell cat fastgd/backends/numba/*.py fastgd/specs.py fastgd/schedules.py | cksum | cut -d' ' -f1)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba/$(NUMBA_SOURCES)
export FASTGD_JAX_CACHE_DIR ?= $(CURDIR)/.cache/jax

.PHONY: demo test bench targets lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test,plot]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fastgd compare --quick --markdown --out results/quick

lint: $(STAMP)
	$(BIN)/ruff check fastgd tests bench

# Two worker processes (the test files shared out whole, so a file's numba kernels compile
# in one process); the compile caches above are shared by both.
PYTEST_WORKERS ?= 2

test: $(STAMP) lint
	$(BIN)/python -m pytest -q --durations=15 -n $(PYTEST_WORKERS) --dist loadfile

# The PyTorch peer runs when torch is installed (`pip install "fastgd[torch]"`); the
# one-sample torch loop on the large problem only with FASTGD_BENCH_HEAVY=1.
bench: $(STAMP)
	mkdir -p results
	$(BIN)/python -m pytest bench -m "slow or not slow" --benchmark-enable --benchmark-only \
	    --benchmark-group-by=group --benchmark-columns=median,iqr,min,rounds \
	    --benchmark-json=results/bench.json
	$(BIN)/python bench/summary.py results/bench.json

# The speed targets of the large problems, runners interleaved in one process (a few minutes).
targets: $(STAMP)
	$(BIN)/python bench/targets.py

clean:
	rm -rf $(VENV) .cache results/quick
