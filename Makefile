# OreMap developer commands. The two a newcomer needs: `make demo` and `make test`.
# Both install whatever is missing first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
PYTHON := $(CURDIR)/.venv/bin/python
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
PROFILE := $(CURDIR)/.build/qgis-profile

# Environment for qgis_process and for standalone QGIS Python (see README, "Environment").
export QT_QPA_PLATFORM := offscreen
export PROJ_DATA := /usr/share/proj
export XDG_RUNTIME_DIR := /tmp/runtime-$(shell id -u)
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export QGIS_PLUGINPATH := $(CURDIR)/.build/plugins
export QGIS_CUSTOM_CONFIG_PATH := $(PROFILE)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup lock test test-fast demo bench models package deploy clean screenshots changelog

help:
	@echo "make demo     install what is missing, then map minerals (AVIRIS-NG tile) and run the geochemical prospectivity chain (real survey) and Sentinel-2 mine detection headless"
	@echo "make test     install what is missing, run every test"
	@echo "make bench    speed and memory benchmarks, anomaly-score AUCs (bench/)"
	@echo "make models   rebuild the bundled models in models/ from ../shared/data"
	@echo "make lock     re-resolve requirements.txt and rewrite requirements.lock (then commit it)"
	@echo "make package  dist/oremap-$(VERSION).zip for QGIS 'Install from ZIP' (DIST=folder to write it elsewhere)"
	@echo "make changelog  copy the newest entry of CHANGELOG.md into metadata.txt (after editing CHANGELOG.md)"
	@echo "make deploy   copy the plugin into your QGIS profile"

setup:
	@bash scripts/setup.sh
	@mkdir -p -m 0700 $(XDG_RUNTIME_DIR) .build/plugins
	@ln -sfn ../.. .build/plugins/oremap
	@grep -qs "^oremap=true" $(PROFILE)/profiles/default/QGIS/QGIS3.ini \
	  || qgis_process plugins enable oremap >/dev/null 2>&1 || true

# Re-resolve requirements.txt under constraints.txt in a throwaway venv and pin everything it installs.
lock:
	/usr/bin/python3 scripts/lock.py
	@echo "Now: rm -rf .venv && make test, then commit the lock it wrote"

# One OpenMP thread per library in tests: torch, scikit-learn and onnxruntime each start a pool, and on a
# busy 2-core machine their spinning threads slow each other down by an order of magnitude.
# `make test TESTS="test/test_idw.py -k extent"` runs a subset with the same environment.
TESTS ?= test
# pytest-qgis keeps its QGIS settings in .qgis-settings between runs: every run starts without them, as on a new
# machine (a setting a test stored would otherwise decide the next run's).
# Tests run with their own temporary folder, removed afterwards: QGIS's application and project each make a
# QGIS3-* folder there, and the test session's QgsApplication is never destroyed, so they were left in /tmp.
test: setup
	rm -rf .qgis-settings
	tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/oremap-test.XXXXXX") && \
	TMPDIR=$$tmp OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(TESTS); \
	rc=$$?; rm -rf "$$tmp"; exit $$rc

test-fast: setup
	rm -rf .qgis-settings
	$(PYTHON) -m pytest -q -p no:cacheprovider -m "not slow" test

demo: setup
	@bash scripts/demo.sh

bench: setup
	$(PYTHON) bench/bench_fcls.py
	$(PYTHON) bench/bench_memory.py
	$(PYTHON) bench/bench_rss.py
	$(PYTHON) bench/bench_cnn.py
	$(PYTHON) bench/bench_ood.py
	$(PYTHON) bench/bench_abundance.py
	$(PYTHON) bench/bench_idw.py
	$(PYTHON) bench/bench_prospectivity.py
	$(PYTHON) bench/bench_sensor_products.py
	$(PYTHON) bench/bench_vae.py
	$(PYTHON) bench/bench_detect_mines.py --quick
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_batch.py
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_anomaly_default.py
	$(PYTHON) bench/bench_anomaly_scale.py

package:
	@/usr/bin/python3 scripts/package.py $(VERSION) $(if $(DIST),--dest "$(DIST)")

changelog:
	@/usr/bin/python3 scripts/changelog.py

deploy:
	@/usr/bin/python3 scripts/package.py $(VERSION) --deploy

clean:
	rm -rf .build dist demo_output .qgis-settings
	find . -name __pycache__ -prune -exec rm -rf {} +

models: setup
	$(PYTHON) scripts/build_models.py

# Regenerate the user guide's screenshots (docs/images) from a real QGIS under Xvfb.
screenshots: setup
	$(PYTHON) scripts/screenshots.py
