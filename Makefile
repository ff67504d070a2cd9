# `make bench` and `make test` work on a fresh clone with nothing installed but Python >= 3.10.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch; a plain `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=
BENCH_ARGS ?=
# `make scale`: fraction of the real row counts, and where data and results go
SCALE ?= 1
SCALE_DIR ?= data/fullsize
SCALE_OUT ?= reports/scale

.PHONY: bench test fuzz setup wheel clean scale

# The default suite: every built-in model on the synthetic data; report in
# reports/default/report/ of the current folder.
bench: $(STAMP)
	$(BIN)/sessionbench run default $(BENCH_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fuzz tests with many more examples than `make test` runs (bad input must never give a traceback or a hang).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz_*.py $(PYTEST_ARGS)

setup: $(STAMP)

# Full-size stand-in data, the GEMM, SR-GNN and GEMM-bound benchmarks, and the scale
# suite (docs/scale.md). Not part of `make test`: hours on a CPU at SCALE=1.
scale: $(STAMP)
	$(BIN)/sessionbench datasets generate yoochoose diginetica --out $(SCALE_DIR) --scale $(SCALE)
	$(BIN)/python -m pytest tests/benchmarks/test_bench_gemm.py tests/benchmarks/test_bench_srgnn.py \
		tests/benchmarks/test_bench_srgnn_bound.py tests/benchmarks/test_bench_gru4rec_bound.py \
		--benchmark-enable -q
	$(BIN)/sessionbench -v run scale --data-dir $(SCALE_DIR) --out $(SCALE_OUT)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# A wheel in dist/ (offline: setuptools and wheel come with the dev extra),
# for `pip install dist/sessionbench-*.whl` elsewhere.
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet -w dist .

clean:
	rm -rf $(VENV) .pytest_cache build dist
