# meshfed.istio developer entry points. `make test` is what CI runs (see .ci/run).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
BUILD := .build
# Ansible finds this checkout as meshfed.istio through a symlinked collections path.
COLLECTIONS := $(CURDIR)/$(BUILD)/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test unit lab-test sanity venv lab-bins collection bench clean

$(VENV)/.stamp: requirements-dev.txt requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp

collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/meshfed
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/meshfed/istio

lab-bins:
	bash tests/lab/build.sh

# Coverage of plugins/module_utils, as a terminal summary (unit tests import the collection from this checkout).
COV := --cov=plugins/module_utils --cov-report=term

unit: venv collection
	$(PY) -m pytest -q $(COV) tests/unit

lab-test: venv collection lab-bins
	$(PY) -m pytest -q -m lab tests/integration

sanity: venv collection
	bash tests/sanity/run.sh

test: venv collection lab-bins
	bash tests/sanity/run.sh
	$(PY) -m pytest -q -ra $(COV) tests/unit tests/integration

demo: venv collection lab-bins
	$(PY) -m tests.demo

bench: venv collection lab-bins
	$(PY) -m benchmarks.fleet

clean:
	rm -rf $(VENV) $(BUILD)
