"""The federation report (Markdown + Mermaid) for the 3-cluster scenario, checked for its
content against what the API servers hold; the one-screen summary in the play output; CA expiry
warnings within a configurable window; an unreachable peer with the age of its cached metadata."""

import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.ansible_run import run_playbook
from tests.lab import kubeapi
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab


def svc(name):
    return "svc-%s.web.svc.%s.local" % (name, name)


def root_fp(cluster):
    """SHA-256 of the cluster's root certificate (DER), computed here independently of the collection."""
    cert = x509.load_pem_x509_certificate(kubeapi.root_pem(cluster).encode())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def trio(lab_clusters, tmp_path_factory):
    clusters = lab_clusters(["cluster-c", "cluster-d", "cluster-e"])
    d = tmp_path_factory.mktemp("report")
    inv = write_inventory(clusters, d / "inventory.yml")
    report = d / "federation.md"
    run = run_playbook(inv, "-e", "meshfed_report_path=%s" % report)
    assert run.rc == 0, run
    return {"clusters": clusters, "inventory": inv, "dir": d, "run": run, "report": report.read_text()}


def section(text, title):
    m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), text, re.M | re.S)
    assert m, "no section %r in report:\n%s" % (title, text)
    return m.group(1)


def test_report_lists_clusters_imports_and_graph(trio):
    text = trio["report"]
    clusters = trio["clusters"]
    assert text.startswith("# Istio federation report")
    table = section(text, "Clusters")
    for c in clusters:
        row = next(line for line in table.splitlines() if line.startswith("| %s |" % c.name))
        assert "%s.local" % c.name in row and svc(c.name) in row and "in this run" in row
    graph = section(text, "Graph")
    assert "```mermaid" in graph and "graph LR" in graph
    imports = section(text, "Imports")
    for c in clusters:
        for p in clusters:
            if p is c:
                continue
            # edge: exporter --> importer, labelled with the service; and a row in the imports table
            edge = r"%s -->\|\"?%s\"?\| %s" % (
                re.escape(p.name.replace("-", "_")), re.escape(svc(p.name)), re.escape(c.name.replace("-", "_")))
            assert re.search(edge, graph), graph
            assert "| %s | %s | %s |" % (c.name, svc(p.name), p.name) in imports
    # what the report says is imported is what the API servers hold
    for c in clusters:
        assert set(kubeapi.se_by_host(c)) == {svc(p.name) for p in clusters if p is not c}


def test_report_trust_matrix_has_fingerprints_and_expiry(trio):
    clusters = trio["clusters"]
    roots = section(trio["report"], "Roots")
    matrix = section(trio["report"], "Trust matrix")
    for c in clusters:
        fp = root_fp(c)
        row = next(line for line in roots.splitlines() if line.startswith("| %s |" % c.name))
        assert fp[:16] in row and re.search(r"\d{4}-\d{2}-\d{2}", row), row
        mrow = next(line for line in matrix.splitlines() if line.startswith("| %s |" % c.name))
        cells = [x.strip() for x in mrow.strip("|").split("|")][1:]
        for peer, cell in zip(clusters, cells):
            if peer is c:
                assert cell == "—"
            else:   # c trusts peer's root: its fingerprint is in c's cell for that peer
                assert root_fp(peer)[:16] in cell and kubeapi.trusted(c)[kubeapi.root_pem(peer).strip()]


def test_one_screen_summary_in_play_output(trio):
    out = trio["run"].stdout
    m = re.search(r"Federation: 3 clusters in this run.*?(?=\n\S|\Z)", out, re.S)
    assert m, out[-4000:]
    summary = m.group(0)
    assert len(summary.splitlines()) <= 25
    assert "6 imports" in summary and "0 warnings" in summary


def test_ca_expiring_within_the_window_is_a_warning(trio):
    report = trio["dir"] / "expiring.md"
    run = run_playbook(trio["inventory"], "-e", "meshfed_report_path=%s" % report,
                       "-e", "meshfed_ca_expiry_warning_days=36500")
    assert run.rc == 0, run
    warnings = section(report.read_text(), "Warnings")
    for c in trio["clusters"]:
        assert re.search(r"%s: root CA .* expires on \d{4}-\d{2}-\d{2}, within 36500 days" % c.name, warnings), warnings
        assert "%s: root CA" % c.name in run.stdout     # the run warns too
    # the default window (30 days) does not flag the lab's CAs
    assert "expires on" not in section(trio["report"], "Warnings")


def test_unreachable_peer_reported_with_the_age_of_its_cached_metadata(trio):
    c, d, e = trio["clusters"]
    report = trio["dir"] / "unreachable.md"
    e.stop_apiserver()
    try:
        run = run_playbook(trio["inventory"], "-e", "meshfed_report_path=%s" % report)
    finally:
        e.start_apiserver()
    text = report.read_text()
    stale = section(text, "Unreachable and stale peers")
    for cl in (c, d):
        row = next(line for line in stale.splitlines() if line.startswith("| %s | cluster-e |" % cl.name))
        assert "unreachable" in row and re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", row)
        assert re.search(r"\b\d+[smhd]\b", row), row       # age of the cached metadata
        # what c and d knew of cluster-e is kept
        assert svc("cluster-e") in kubeapi.se_by_host(cl)
    assert "cluster-e" in section(text, "Warnings")
    assert run.failed("cluster-e") == 1
