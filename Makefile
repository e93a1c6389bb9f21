# The README's commands. `make run` and `make test` work on a fresh Debian/Ubuntu machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Tests always use real services: the local ones by default, overridable by env.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/unmask
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
DATA ?= ../shared/data

.PHONY: run test lint format bench train train-loso evaluate worker migrate clean help test-packages

help:
	@echo "make run    - set up and start web + worker (+ embedded SQLite/Redis unless DATABASE_URL/REDIS_URL are set)"
	@echo "make test   - run the whole suite against real PostgreSQL and Redis"
	@echo "make lint   - ruff (lint + format) and bandit (security)"
	@echo "make train  - prepare face crops, train and register both models from $(DATA)"
	@echo "make train-loso - the image recipe once without each image source (leave-one-source-out)"
	@echo "make evaluate - both model cards' figures on every held-out set (through the scan pipeline)"
	@echo "make bench  - speed and memory benchmarks (see bench/)"

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "Could not create a virtual environment with $(PYTHON)."; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's venv support..."; \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "Install it first: sudo apt-get install python3-venv"; exit 1; fi; }
	@$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime-installed

run: $(VENV)/.runtime-installed
	$(BIN)/python -m deepfake_site.launcher

worker: $(VENV)/.runtime-installed
	$(BIN)/python manage.py scan_worker

migrate: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput

# Debian packages some tests drive for real: Chromium for the browser test (no browser download), nginx for the
# test of deploy/nginx.conf, npm for axe-core (the accessibility engine the browser tests run, from the npm
# registry, into var/test-tools). Installed when missing and we are root; otherwise those tests skip and say how.
TEST_PACKAGES := chromium:chromium nginx:nginx-light npm:npm
AXE_CORE_VERSION := 4.14.1
AXE_JS := var/test-tools/node_modules/axe-core/axe.min.js
test-packages:
	@missing=""; for pair in $(TEST_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "Not installed and not root:$$missing; the tests that need them will be skipped (sudo apt-get install$$missing)"; fi; \
	fi
	@if [ ! -f $(AXE_JS) ] && command -v npm >/dev/null; then \
	  echo "Installing axe-core $(AXE_CORE_VERSION) for the browser tests"; \
	  npm install --silent --no-save --no-audit --no-fund --prefix var/test-tools axe-core@$(AXE_CORE_VERSION) \
	    || echo "axe-core could not be installed; the accessibility checks will be skipped"; fi

test: $(VENV)/.dev-installed test-packages
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) TF_CPP_MIN_LOG_LEVEL=2 \
	  $(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) TF_CPP_MIN_LOG_LEVEL=2 \
	  $(BIN)/pytest $(PYTEST_ARGS)

# Rebuilds the default models from $(DATA) as their model cards describe; the runs land in var/ml/runs/ and
# `manage.py ship_model` (see the cards) copies a run into ml/weights/. On 2 CPU cores: crops ~12 minutes the
# first time (cached after), the image model ~55 minutes, the video model a few minutes. The image model is
# stage 1 alone, 3,800 steps: no video stage, which scored held-out video frames worse (image card, *Stage 1
# alone*), so the hour it took goes to stage 1 and every video frame stays held out for the video model. Every
# face is scored with its mirror image (test-time flipping, the recipe's default since 2026-12-06: 2.1.0), and the
# fakes include blends of two people (`--cross-blended`, since 2026-12-07: 2.2.0; image card, *blends of two people*).
SOURCES := stylegan-celeba,sdfd-ffhq,dfdc-faces
IMAGE_RUN := var/ml/runs/image-v2
train: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py prepare_training_data --data $(DATA)
	nice -n 10 $(BIN)/python manage.py train_image_model --sources $(SOURCES) --data $(DATA) --out $(IMAGE_RUN) \
	  --stage1-steps 3800 --stage2-steps 0 --seed 0 --cross-blended --model-version 2.2.0 --activate
	$(BIN)/python manage.py train_video_model --image-run $(IMAGE_RUN) --out var/ml/runs/video-v2 \
	  --seed 0 --model-version 2.2.0 --activate

# Leave-one-source-out: the image recipe trained once without each image source, scored on it by `make evaluate`.
# Stage 1 gets the 1,200 steps of the recipe experiments, not the shipped 3,000, and no cross-fitting, so that
# the three runs fit in about 50 minutes on 2 CPU cores; the card says so beside their figures.
train-loso: $(VENV)/.runtime-installed
	$(BIN)/python manage.py prepare_training_data --data $(DATA)
	for source in sdfd-ffhq dfdc-faces stylegan-celeba; do \
	  nice -n 10 $(BIN)/python manage.py train_image_model --sources $(SOURCES) --leave-out $$source --data $(DATA) \
	    --stage1-steps 1200 --stage2-steps 0 --out var/ml/runs/loso-$$source --seed 0 || exit 1; done

# Both model cards' figures (held-out image sets through the scan pipeline, 2.0.0 and v1 beside 2.1.0, the LOSO runs where
# `make train-loso` made them; every held-out video); writes var/ml/report/ and the cards' tables.
evaluate: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py register_shipped_models --keep-active
	$(BIN)/python manage.py evaluate_report --data $(DATA) --compare unmask-image@2.0.0 --compare unmask-image@1.0.0 --record \
	  --card ml/weights/MODEL_CARD_image.md --video-card ml/weights/MODEL_CARD_video.md \
	  $$(for source in $$(echo $(SOURCES) | tr , ' '); do \
	    [ -f var/ml/runs/loso-$$source/image_model.keras ] && echo --left-out $$source=var/ml/runs/loso-$$source; done)

# Speed and memory benchmarks (issue 6, 5): each prints its figures and the machine; not part of `make test`.
bench: $(VENV)/.dev-installed
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -r . -x ./.venv,./var --severity-level medium

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var/media var/models var/db.sqlite3 var/redis.db
