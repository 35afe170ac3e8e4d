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

.PHONY: demo test unit lab-test sanity sanity-matrix venv lab-bins kubectl meshsim collection bench profile clean lint changelog dist ee release-check

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

# kubectl from its Go module at the lab's Kubernetes version, for the GitOps (render mode) lab tests.
kubectl:
	bash tests/lab/build_kubectl.sh

# Istio's config generation as a program (tests/meshsim), for the traffic checks of the lab tests.
meshsim:
	bash tests/meshsim/build.sh

# Coverage of plugins/module_utils, as a terminal summary (unit tests import the collection from this checkout).
COV := --cov=plugins/module_utils --cov-report=term
# pytest-xdist workers for the test suites (PYTEST_WORKERS=0: one process). --dist loadfile keeps a file's
# tests on one worker, so a module's lab clusters (module-scoped fixtures) are started once; each worker
# has its own lab (own work dir, ports free-picked and retried on a collision).
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

unit: venv collection
	$(PY) -m pytest -q $(COV) tests/unit

lab-test: venv collection lab-bins kubectl meshsim
	$(PY) -m pytest -q $(XDIST) -m lab tests/integration

sanity: venv collection
	bash tests/sanity/run.sh

# Sanity first: it needs no Go binary, so on a cold machine it runs while .ci/run's background builds
# compile; lab-bins and meshsim then wait on those builds' locks and return the cached binaries.
test: venv collection
	bash tests/sanity/run.sh
	$(MAKE) --no-print-directory lab-bins kubectl meshsim
	$(PY) -m pytest -q -ra $(XDIST) $(COV) tests/unit tests/integration

demo: venv collection lab-bins
	$(PY) -m tests.demo

# ansible-lint --profile production (see .ansible-lint for the one justified skip).
lint: venv collection
	$(VENV)/bin/ansible-lint --profile production

# Fold changelogs/fragments/ into changelogs/changelog.yaml and regenerate CHANGELOG.rst for the version
# in galaxy.yml (a release not yet published is updated in place).
changelog: venv collection
	$(VENV)/bin/antsibull-changelog release --update-existing --reload-plugins

# The Galaxy tarball in .build/dist (contents checked by tests/release/check_dist.py).
dist: venv
	rm -rf $(BUILD)/dist
	$(VENV)/bin/ansible-galaxy collection build --output-path $(BUILD)/dist .
	$(PY) tests/release/check_dist.py $(BUILD)/dist/meshfed-istio-*.tar.gz

# Build contexts of both execution environments (ee/aap: AAP's minimal base; ee/community) in .build/ee/.
# They take meshfed.istio from Galaxy (ee/*/requirements.yml); build with ansible-builder build or podman.
ee: venv
	for e in aap community; do (cd ee/$$e && $(CURDIR)/$(VENV)/bin/ansible-builder create -f execution-environment.yml \
	  -c $(CURDIR)/$(BUILD)/ee/$$e --output-filename Containerfile) || exit 1; done

# Changelog, lint, build, galaxy-importer (REQUIRE_V1_OR_GREATER), install into a fresh path, both EE contexts,
# demo from the installed collection (tests/release/run.sh).
release-check: venv collection lab-bins
	bash tests/release/run.sh

# ansible-test sanity on the oldest and newest ansible-core that meta/runtime.yml claims, on every
# controller Python they support that this machine has (tests/sanity/matrix.sh).
sanity-matrix: venv collection
	bash tests/sanity/matrix.sh

# Side-by-side benchmark (collection vs kubernetes.core vs bare Ansible); CI size by default,
# MESHFED_BENCH_SIZE=full for 5x100 and 10x100. Exits 1 on a missed target.
bench: venv collection lab-bins
	$(PY) -m benchmarks.bench

# Where the time goes (per task, per module phase, controller); BENCH_ARGS="--clusters 5 --services 100".
profile: venv collection lab-bins
	$(PY) -m benchmarks.profile $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BUILD)
