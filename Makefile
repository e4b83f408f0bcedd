# Two entry points for a fresh machine (see README): `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first from the local CPU wheel: an unpinned resolve would pull several GB of CUDA.
	$(BIN)/pip install -q torch==2.13.0 uv==0.13.9
	# Bytecode compiled at install: imports (feast, kfp) are twice as fast, and PYTHONDONTWRITEBYTECODE may be set.
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: setup run test lint bench
setup: $(STAMP)

run: $(STAMP)
	$(BIN)/catalog run training --summary runs/summary.json

test: $(STAMP)
	./scripts/test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
