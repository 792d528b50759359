# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit browser docker-requirements clean
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[cli]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/imgpipe demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy core handlers infra loadtest

# The browser test drives Debian's Chromium; install it when missing (the test says so
# and skips only if this fails).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install chromium: the browser test will be skipped"

unit: $(VENV)/.dev browser
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

# Regenerate the Lambda image's locked, hashed requirements from pyproject.toml.
docker-requirements: $(VENV)/.dev
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.12 --generate-hashes \
	  --custom-compile-command "make docker-requirements" -o docker/requirements.txt

clean:
	rm -rf $(VENV) imgpipe-out .pytest_cache .mypy_cache .ruff_cache
