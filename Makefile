# `make run` sets up .venv and starts the UI; `make test` sets up .venv plus the
# browser-test needs and runs the whole suite. Both are idempotent: stamp files
# record what is installed, so a second run skips straight to the work.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check
# Reinstall when a requirements file changes.
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test setup setup-dev browser metadata-tools bench clean-venv help

help:
	@echo "make run    - set up .venv and launch the workbench on http://127.0.0.1:7860"
	@echo "make test   - set up .venv (+ chromium, exiftool, exiv2 for tests) and run pytest"
	@echo "make bench  - run the benchmarks in bench/ (slow; prints figures)"

# Debian/Ubuntu ship venv separately; install it when it is missing.
$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(SUDO) apt-get update && \
	  $(SUDO) apt-get install -y --no-install-recommends python3-venv && $(PYTHON) -m venv $(VENV); }

# torch and torchvision go first and pinned: an unpinned torch requirement (timm
# declares one through torchvision) would otherwise pull a multi-GB CUDA build.
# TORCH_INDEX picks where torch comes from, e.g. a CPU-only build on a machine
# without a GPU: make run TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH_INDEX ?=
# Last, the package itself, editable: .venv/bin/workbench is then the same as `python -m workbench`.
# Its dependencies are the ones just installed (--no-deps); pip builds it with setuptools (pyproject.toml).
$(RUNTIME_STAMP): requirements.txt pyproject.toml | $(PY)
	$(PIP) $(TORCH_INDEX) torch==2.13.0 torchvision==0.28.0
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -e .
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(PIP) -r requirements-dev.txt
	touch $@

setup: $(RUNTIME_STAMP)
setup-dev: $(DEV_STAMP) browser

# Browser tests drive Debian's chromium through Playwright; never `playwright install`.
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium present: $$(command -v chromium)"; \
	else $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; fi

# The XMP tests read what the workbench writes with two independent readers, Debian's exiftool and exiv2
# (the workbench itself needs neither: pyexiv2 ships its own exiv2).
metadata-tools:
	@if command -v exiftool >/dev/null 2>&1 && command -v exiv2 >/dev/null 2>&1; then echo "exiftool and exiv2 present"; \
	else $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends libimage-exiftool-perl exiv2; fi

run: setup
	$(PY) gradio_app.py

# ruff first (lint and import order, configured in pyproject.toml): seconds, before a ~10 min suite
test: setup-dev metadata-tools
	$(PY) -m ruff check .
	$(PY) -m pytest

# The SAVOIAS benchmarks read ../shared/datasets (research data that is never
# copied into the repository); they are skipped with a message where it is absent.
SHARED := ../shared
bench: $(DEV_STAMP)
	$(PY) bench/dataset_bench.py
	$(PY) bench/data_tab_bench.py --n 5000 --repeats 5
	$(PY) bench/extract_bench.py --count 200 --naive-count 50
	$(PY) bench/train_tab_bench.py
	$(PY) bench/load_bench.py
	$(PY) bench/fuzz_bench.py
	@if [ -d $(SHARED)/datasets/savoias ]; then \
	  $(PY) bench/compare_bench.py && $(PY) bench/predict_bench.py --n 48 && \
	  $(PY) bench/learning_curve_bench.py && $(PY) bench/category_split_bench.py && \
	  $(PY) bench/multimodal_bench.py && $(PY) bench/labelling_bench.py && $(PY) bench/cull_bench.py; \
	else echo "skipped the SAVOIAS benchmarks: $(SHARED)/datasets/savoias is absent"; fi

clean-venv:
	rm -rf $(VENV)
