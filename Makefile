# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck security unit browser node docker-requirements base-image clean \
	bench-peers bench-corpus
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

$(BIN)/python:
	@echo "==> creating $(VENV) and upgrading pip"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip

# The runtime dependencies install at the versions the Lambda image ships: the lock's pins,
# without their hashes, as constraints. The suite then tests what deploys, and a release
# within pyproject's ranges cannot change it on a fresh machine.
LOCK_PINS := $(VENV)/lock-pins.txt
$(LOCK_PINS): docker/requirements.txt | $(BIN)/python
	sed -n 's/^\([A-Za-z0-9_.-]*==[^ ;]*\).*/\1/p' $< > $@

$(VENV)/.runtime: pyproject.toml $(LOCK_PINS) | $(BIN)/python
	@echo "==> installing imgpipe and its CLI dependencies into $(VENV) (about 30 s the first time)"
	$(PIP) install -c $(LOCK_PINS) -e '.[cli]'
	touch $@

$(VENV)/.dev: pyproject.toml $(LOCK_PINS) | $(BIN)/python
	@echo "==> installing imgpipe with the test and lint tools into $(VENV) (about a minute the first time)"
	$(PIP) install -c $(LOCK_PINS) -e '.[dev]'
	touch $@ $(VENV)/.runtime

# checkov lives in a venv of its own: installed next to imgpipe it would downgrade boto3 (to
# 1.35) and packaging (to 23.2). Its version is pinned here, as pyproject.toml cannot hold it.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(VENV)/checkov/bin/checkov

$(CHECKOV):
	@echo "==> installing checkov $(CHECKOV_VERSION) into $(VENV)/checkov (about 45 s the first time)"
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip --disable-pip-version-check -q install 'checkov==$(CHECKOV_VERSION)'

demo: $(VENV)/.runtime
	$(BIN)/imgpipe demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy core handlers infra loadtest

# Every suppression sits in the template's Metadata with its reason; nothing may fail.
security: $(CHECKOV)
	$(CHECKOV) -f infra/template.yaml --framework cloudformation --compact --quiet --skip-download

# The browser test drives Debian's Chromium; install it when missing (the test says so
# and skips only if this fails).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install chromium: the browser test will be skipped"

# The placeholder and CDN tests run JavaScript (the ThumbHash reference, the CloudFront
# function) under Node, and the local stack's CDN runs the function too: Debian's nodejs.
node:
	@command -v node >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs >/dev/null; }

unit: $(VENV)/.dev browser node
	$(BIN)/pytest -n 2 -q

test: lint typecheck security unit

# Regenerate the Lambda image's locked, hashed requirements from pyproject.toml.
docker-requirements: $(VENV)/.dev
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.12 --generate-hashes \
	  --custom-compile-command "make docker-requirements" -o docker/requirements.txt

# Re-pin the Lambda base image to the current digest of its multi-arch index (needs network).
BASE_TAG := public.ecr.aws/lambda/python:3.12
base-image:
	@token=$$(curl -fsS 'https://public.ecr.aws/token/?scope=repository:lambda/python:pull' | \
	  $(PYTHON) -c 'import json, sys; print(json.load(sys.stdin)["token"])') && \
	digest=$$(curl -fsSI -H "Authorization: Bearer $$token" \
	  -H 'Accept: application/vnd.oci.image.index.v1+json' \
	  -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
	  https://public.ecr.aws/v2/lambda/python/manifests/3.12 | tr -d '\r' | \
	  awk 'tolower($$1) == "docker-content-digest:" { print $$2 }') && \
	case "$$digest" in sha256:*) ;; *) echo "no digest for $(BASE_TAG)" >&2; exit 1;; esac && \
	sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$(BASE_TAG)@$$digest|" docker/Dockerfile && \
	echo "docker/Dockerfile now pins $(BASE_TAG)@$$digest"

clean:
	rm -rf $(VENV) imgpipe-out .pytest_cache .mypy_cache .ruff_cache

# `imgpipe bench`'s optional peers: pyvips (the `bench` extra) and sharp (Node + libvips), the
# latter into .bench-peers/ (ignored by git). The benchmark runs without them.
SHARP_VERSION := 0.35.5
bench-peers: $(VENV)/.dev
	$(PIP) install -c $(LOCK_PINS) -e '.[bench]'
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: the sharp peers will be skipped"; exit 0; }; \
	  npm install --no-audit --no-fund --no-save --prefix .bench-peers 'sharp@$(SHARP_VERSION)'

# Real photographs for `imgpipe bench`: Debian's KDE Plasma and UKUI wallpaper packages,
# downloaded (not installed) and reduced to their distinct JPEGs of 3.5 MP or more. Their
# licences (LGPL, CC BY-SA and others, see each package's copyright file) are kept beside them;
# the photos are never committed.
BENCH_CORPUS ?= build/bench-corpus
bench-corpus: $(VENV)/.dev
	@mkdir -p $(BENCH_CORPUS)/debs
	cd $(BENCH_CORPUS)/debs && apt-get download plasma-workspace-wallpapers ukui-wallpapers
	$(BIN)/python -m loadtest.bench_corpus $(BENCH_CORPUS)/debs $(BENCH_CORPUS)
