"""Fixtures for tests against the real multi-cluster lab (tests/lab). Mark such tests ``@pytest.mark.lab``.

Missing binaries are built (tests/lab/build.sh) rather than the tests skipped: CI must run them.
"""

import itertools
import json
from pathlib import Path

import pytest

from tests.lab import crds, seed as lab_seed
from tests.lab.inventory import write_inventory
from tests.lab.lab import Lab, binaries

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def lab_bin_dir():
    """Directory with kube-apiserver and etcd (built and cached on first use), Istio CRDs fetched."""
    d = binaries()
    crds.istio_crds_path()
    return d


@pytest.fixture(scope="session")
def lab(lab_bin_dir, tmp_path_factory):
    """The session's :class:`tests.lab.lab.Lab` (work dir under pytest's tmp dir; every process is
    killed at session end, also when tests fail or the run is interrupted)."""
    the_lab = Lab(tmp_path_factory.mktemp("lab"), bin_dir=lab_bin_dir)
    try:
        yield the_lab
    finally:
        the_lab.close()


_shared = {}


def _spec_key(names, spec):
    return (tuple(names), json.dumps(spec, sort_keys=True, default=str))


@pytest.fixture(scope="module")
def lab_clusters(lab):
    """Factory: ``lab_clusters(names, spec=None, shared=False, seed=True) -> [Cluster, ...]``.

    Returns started clusters with exactly the given names, in order, seeded with
    ``tests.lab.seed.default_spec(name)`` or ``spec[name]`` (``spec`` maps cluster name -> spec
    dict; names not in it get the default). ``seed=False`` gives empty clusters (no CRDs either).

    Isolation policy:
    * by default every call starts FRESH clusters (new etcd + kube-apiserver, their own CAs), so a
      module may mutate them freely; names may repeat across calls and modules (two modules both
      get their own ``cluster-a``). They are stopped when the requesting module finishes.
    * ``shared=True`` returns clusters started once per session for the same (names, spec) and
      never stopped before session end. Use it only for tests that do not change cluster state
      (or undo every change), e.g. read-only checks of the seed.
    """
    mine = []

    def factory(names, spec=None, shared=False, seed=True):
        names = list(names)
        key = _spec_key(names, spec) + (seed,)
        if shared and key in _shared and all(c.running for c in _shared[key]):
            return list(_shared[key])
        clusters = lab.start(names)
        if not shared:
            mine.extend(clusters)
        if seed:
            lab_seed.seed_clusters(clusters, spec or {})
        if shared:
            _shared[key] = clusters
        return list(clusters)

    yield factory
    lab.stop_clusters(mine, remove_data=True)


_inv_counter = itertools.count(1)

# Lab files, longest first. Rough wall seconds on 2 loaded cores: membership, report, credentials and lab
# from their pytest --durations on 2026-12-04, the others estimated from what they start (lab clusters,
# playbook runs, meshsim checks); an unlisted file counts as 0. With pytest-xdist --dist loadfile (make
# test) a worker takes a whole file; starting the longest ones first keeps one long file from running
# alone at the end. Only the order changes, never what runs.
FILE_SECONDS = {
    "test_real_installs.py": 420, "test_faults.py": 330, "test_sovereign.py": 260, "test_install_shapes.py": 250,
    "test_traffic.py": 200, "test_federation.py": 170, "test_membership.py": 150, "test_report.py": 110,
    "test_credentials.py": 90, "test_lab.py": 60,
}


def pytest_collection_modifyitems(items):
    """Run the integration files longest first (a stable sort: tests keep their order within a file)."""
    def weight(item):
        path = item.path
        return -FILE_SECONDS.get(path.name, 0) if path.parent == HERE else 0

    items.sort(key=weight)


@pytest.fixture
def inventory(tmp_path):
    """Helper: ``inventory(clusters, extra_hostvars=None, group="meshfed_clusters") -> Path`` writes a
    YAML inventory (one host per cluster, see tests/lab/inventory.py) into the test's tmp dir."""

    def make(clusters, extra_hostvars=None, group="meshfed_clusters"):
        return write_inventory(clusters, tmp_path / ("inventory-%d.yml" % next(_inv_counter)),
                               extra_hostvars=extra_hostvars, group=group)

    return make
