"""Default behaviour on each real-install shape: federated with NO option added for install shapes.

test_real_installs.py proves the features (options included). Here every fixture runs the playbook
with only the options the collection had before it handled install shapes (d8284eb), on one
real-install shape at a time, and each test first asserts the hop or object the shape is about, so
that on that code (tests/integration/old_main.sh) the failure names the harm itself: the gateway hop that does
not route the SNI, the duplicate filter chain, the client hop that sees no ServiceEntry, the trust
written to a ConfigMap no istiod reads. Where a shape is not the point, it is the lab's (istiod
--domain = the trust domain), so that no other shape's harm gets in the way. Fixtures do not assert
the run's rc: on the old code some runs fail, and the tests say what that broke.
"""

import pytest
import yaml

from tests.integration.ansible_run import run_playbook
from tests.integration.traffic import assert_traffic, check_traffic
from tests.lab import kubeapi
from tests.lab import seed as lab_seed
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

NS = "istio-system"
BAR = "bar.xyz.svc.cluster-b.local"


def federate(lab_clusters, tmp_path_factory, label, specs, hostvars=None):
    clusters = lab_clusters(["cluster-a", "cluster-b"],
                            spec={n: specs.get(n) or lab_seed.default_spec(n) for n in ("cluster-a", "cluster-b")})
    inv = write_inventory(clusters, tmp_path_factory.mktemp(label) / "inventory.yml", extra_hostvars=hostvars)
    return {"a": clusters[0], "b": clusters[1], "clusters": clusters, "run": run_playbook(inv)}


def shape(name, **overrides):
    """The lab's seed spec for ``name`` with one install shape changed."""
    return dict(lab_seed.default_spec(name), **overrides)


def assert_hop_ok(pair, hop, host, port=8080):
    """The bullet's hop first (its failure is the harm), then the whole path."""
    report = check_traffic(pair["clusters"], "cluster-a", "cluster-b", host, port)
    assert hop not in report.failed, str(report)
    assert_traffic(pair["clusters"], "cluster-a", "cluster-b", host, port)


def gateway_servers(cluster):
    """(Gateway name, server) of every Gateway in the Istio and the gateway namespace."""
    return [(gw["metadata"]["name"], s) for ns in (NS, "istio-gateways")
            for gw in kubeapi.gateways(cluster, ns).values() for s in gw["spec"]["servers"]]


# names don't resolve ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def no_autoallocation(lab_clusters, tmp_path_factory):
    """cluster-a's istiod does not auto-allocate ServiceEntry addresses (PILOT_ENABLE_IP_AUTOALLOCATE=false:
    Istio's default before 1.25, or switched off); its sidecars capture DNS (the lab's mesh config)."""
    specs = {"cluster-a": shape("cluster-a", istiod_env={"PILOT_ENABLE_IP_AUTOALLOCATE": "false"})}
    return federate(lab_clusters, tmp_path_factory, "shape-dns", specs)


def test_dns_imported_name_resolves_without_auto_allocation(no_autoallocation):
    assert_hop_ok(no_autoallocation, "dns", BAR)


# the cluster domain is guessed ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_domain(lab_clusters, tmp_path_factory):
    """istiod --domain cluster.local (Istio's default) on both; trust domains cluster-a/b.local."""
    specs = {n: shape(n, cluster_domain="cluster.local") for n in ("cluster-a", "cluster-b")}
    return federate(lab_clusters, tmp_path_factory, "shape-domain", specs)


def test_domain_what_is_imported_is_routed_by_the_peer_gateway(real_domain):
    hosts = [h for h in kubeapi.se_by_host(real_domain["a"]) if h.startswith("bar.xyz.svc.")]
    assert len(hosts) == 1, hosts
    assert_hop_ok(real_domain, "gateway", hosts[0])


# revisioned installs, with a stale `istio` ConfigMap ----------------------------------------------------
@pytest.fixture(scope="module")
def stale_revision(lab_clusters, tmp_path_factory):
    specs = {"cluster-b": shape("cluster-b", revision="canary", stale_istio_configmap=True)}
    return federate(lab_clusters, tmp_path_factory, "shape-revision", specs)


def test_revision_trust_is_never_written_where_no_istiod_reads(stale_revision):
    b = stale_revision["b"]
    stale = yaml.safe_load(kubeapi.mesh_text(b)) or {}
    assert not stale.get("caCertificates"), "peer roots written to ConfigMap istio; istiod-canary reads istio-canary"
    run = stale_revision["run"]
    assert run.failed("cluster-b") > 0, run  # no silent success: no revision chosen, two mesh ConfigMaps
    (rec,) = [r for r in run.records if r["host"] == "cluster-b" and r["status"] == "failed"]
    assert "istio-canary" in rec["msg"] and "revision" in rec["msg"], rec


# existing east-west gateways -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eastwest(lab_clusters, tmp_path_factory):
    """Istio's documented multi-network Gateway (cross-network-gateway, *.local, AUTO_PASSTHROUGH)
    already on cluster-b's east-west gateway before the first run."""
    specs = {"cluster-b": shape("cluster-b", istio_gateways=[lab_seed.cross_network_gateway()])}
    return federate(lab_clusters, tmp_path_factory, "shape-eastwest", specs)


def test_eastwest_listener_is_not_broken_by_a_duplicate_server(eastwest):
    assert_hop_ok(eastwest, "gateway", BAR)
    passthrough = [name for name, s in gateway_servers(eastwest["b"])
                   if s["port"]["number"] == 15443 and (s.get("tls") or {}).get("mode") == "AUTO_PASSTHROUGH"]
    assert passthrough == ["cross-network-gateway"], passthrough


# The smaller ones --------------------------------------------------------------------------------------
SMALL_B_SERVICES = [
    {"namespace": "xyz", "name": "bar", "ports": [{"name": "http", "port": 8080}]},
    {"namespace": "xyz", "name": "raw", "ports": [{"port": 7000}]},
    {"namespace": "xyz", "name": "h2", "ports": [
        {"name": "web", "port": 8081, "appProtocol": "kubernetes.io/h2c"},
        {"name": "grpc-web", "port": 8082}]},
    {"namespace": "xyz", "name": "db", "cluster_ip": "None", "ports": [{"name": "tcp-db", "port": 5432}]},
]
TLS_TO_8443 = [{"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
               {"name": "tls", "port": 15443, "targetPort": 8443, "protocol": "TCP"},
               {"name": "https", "port": 8443, "targetPort": 9443, "protocol": "TCP"}]


@pytest.fixture(scope="module")
def small(lab_clusters, tmp_path_factory):
    """cluster-b's gateway Service maps port 15443 to targetPort 8443 and also serves port 8443 (-> 9443):
    a Gateway server on 8443 is istiod's Service port 8443, so it listens on 9443, not where 15443 lands.
    cluster-b also exports an unnamed port, appProtocol kubernetes.io/h2c, grpc-web and a headless Service."""
    gw = {"ip": lab_seed.gateway_ip_for("cluster-b"), "ports": TLS_TO_8443}
    specs = {"cluster-b": shape("cluster-b", public_services=SMALL_B_SERVICES, gateway=gw)}
    return federate(lab_clusters, tmp_path_factory, "shape-small", specs)


def test_gateway_server_is_on_the_service_port(small):
    assert_hop_ok(small, "gateway", BAR)
    ports = [s["port"]["number"] for _name, s in gateway_servers(small["b"])]
    assert ports == [15443], ports  # the Service port; istiod maps it to the pod's targetPort 8443


def test_protocols_are_derived_as_istio_does(small):
    hosts = kubeapi.se_by_host(small["a"])
    got = {(svc, p["number"]): p.get("protocol") or "(sniffed)" for svc in ("raw", "h2")
           for p in hosts.get("%s.xyz.svc.cluster-b.local" % svc, {"spec": {"ports": []}})["spec"]["ports"]}
    # unnamed port: no protocol, Istio sniffs; appProtocol kubernetes.io/h2c: HTTP2; name grpc-web: gRPC-Web
    want = {("raw", 7000): "(sniffed)", ("h2", 8081): "HTTP2", ("h2", 8082): "grpc-web"}
    assert {k: v.lower() for k, v in got.items()} == {k: v.lower() for k, v in want.items()}, got


def test_headless_service_is_exported_and_reached(small):
    assert_hop_ok(small, "gateway", "db.xyz.svc.cluster-b.local", 5432)
    (db,) = [s for s in small["run"].results("cluster_info", "cluster-b")[0]["card"]["public_services"]
             if s["name"] == "db"]
    assert db["headless"] is True, db


@pytest.fixture(scope="module")
def joined_names(lab_clusters, tmp_path_factory):
    """cluster-b exports foo-bar/baz and foo/bar-baz (names that join alike with '-') beside xyz/bar."""
    services = [dict(lab_seed.default_spec("cluster-b")["public_services"][0]),
                {"namespace": "foo-bar", "name": "baz", "ports": [{"name": "http", "port": 80}]},
                {"namespace": "foo", "name": "bar-baz", "ports": [{"name": "http", "port": 80}]}]
    return federate(lab_clusters, tmp_path_factory, "shape-names", {"cluster-b": shape("cluster-b", public_services=services)})


def test_names_that_join_alike_are_both_imported(joined_names):
    hosts = kubeapi.se_by_host(joined_names["a"])
    assert BAR in hosts, "nothing of cluster-b imported on cluster-a: %s\n%s" % (  # a clash blocks nothing else
        sorted(hosts), "\n".join(r["msg"] for r in joined_names["run"].records if r["msg"]))
    one, two = hosts.get("baz.foo-bar.svc.cluster-b.local"), hosts.get("bar-baz.foo.svc.cluster-b.local")
    assert one and two and one["metadata"]["name"] != two["metadata"]["name"], sorted(hosts)
    assert joined_names["run"].failed("cluster-a") == 0, joined_names["run"]
    assert_traffic(joined_names["clusters"], "cluster-a", "cluster-b", "baz.foo-bar.svc.cluster-b.local", 80)


@pytest.fixture(scope="module")
def scoped_gateway(lab_clusters, tmp_path_factory):
    """The east-west gateway runs in its own namespace, istiod with PILOT_SCOPE_GATEWAY_TO_NAMESPACE=true:
    only Gateways in the gateway's namespace apply to it. meshfed_gateway_namespace existed before d8284eb."""
    gw = {"ip": lab_seed.gateway_ip_for("cluster-b"), "namespace": "istio-gateways"}
    specs = {"cluster-b": shape("cluster-b", gateway=gw, istiod_env={"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"})}
    return federate(lab_clusters, tmp_path_factory, "shape-scope", specs,
                    {"cluster-b": {"meshfed_gateway_namespace": "istio-gateways"}})


def test_export_gateway_lives_in_the_gateway_namespace(scoped_gateway):
    assert_hop_ok(scoped_gateway, "gateway", BAR)


@pytest.fixture(scope="module")
def namespace_local_default(lab_clusters, tmp_path_factory):
    """cluster-a's mesh config sets defaultServiceExportTo: ["."] (a common hardening)."""
    mesh = lab_seed.mesh_text("cluster-a.local") + "defaultServiceExportTo:\n- .\n"
    return federate(lab_clusters, tmp_path_factory, "shape-exportto", {"cluster-a": shape("cluster-a", mesh=mesh)})


def test_imports_are_visible_to_the_client_namespace(namespace_local_default):
    assert_hop_ok(namespace_local_default, "client", BAR)
