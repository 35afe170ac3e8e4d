"""Federation on the Istio installs people actually run, against real lab API servers.

One test (or a small group) per way a real install differs from the lab, each seeding the install shape as data
(tests/lab/seed.py: istiod --domain, revisions, DNS capture, Istio's *.local east-west Gateway,
Pods with service accounts) and asserting what Istio needs, as read from its own source:

* names resolve: imported hosts carry a stable, collision-free address (the sidecar DNS proxy only
  answers for hosts with an address) and DNS capture is reported;
* the cluster domain is istiod's --domain (the gateway registry's hosts), with an optional
  federation alias served on the exporting side by a ServiceEntry selecting the real workloads;
* revisioned installs: ConfigMap istio-<rev> / Deployment istiod-<rev>, and no guess between two;
* an existing AUTO_PASSTHROUGH server (cross-network-gateway, *.local) is reused, never duplicated;
  a clashing server is refused by name;
* imports check the server identity (subjectAltNames from the exporting pods' service accounts);
* installer-owned mesh config: reverts are reported, or trust is emitted as Helm values;
* the smaller ones: Gateway port = Service port, Gateway in the gateway's namespace, explicit
  exportTo, Istio's protocol derivation, injective names, headless Services, per-peer selection.
"""

import ipaddress
import re

import pytest
import yaml
from kubernetes import client as k8s

from tests.integration.ansible_run import run_playbook
from tests.integration.traffic import assert_traffic, check_traffic
from tests.lab import kubeapi
from tests.lab import seed as lab_seed
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

NS = "istio-system"
BAR_REAL = "bar.xyz.svc.cluster.local"
BAR_ALIAS = "bar.xyz.svc.cluster-b.local"
FOO_ALIAS = "foo.abc.svc.cluster-a.local"
DEFAULT_RANGE = ipaddress.ip_network("240.241.0.0/16")


# -- helpers --------------------------------------------------------------------------------------
def spec(name, **shape):
    """The seed scenario's spec for ``name`` on a real-install default: istiod --domain cluster.local."""
    s = lab_seed.default_spec(name)
    s["cluster_domain"] = "cluster.local"
    s.update(shape)
    return s


def with_service_account(s, name, service_account):
    """The spec with the Service ``name``'s pods running as ``service_account`` (lab seed workloads)."""
    s["public_services"] = [dict(svc, service_account=service_account) if svc["name"] == name else svc
                            for svc in s["public_services"]]
    return s


def federate(lab_clusters, tmp_path_factory, specs, hostvars=None, label="real"):
    clusters = lab_clusters(sorted(specs), spec=specs)
    inv = write_inventory(clusters, tmp_path_factory.mktemp(label) / "inventory.yml", extra_hostvars=hostvars)
    run = run_playbook(inv)
    return {c.name: c for c in clusters}, inv, run


def card(run, host):
    (rec,) = [r for r in run.results("cluster_info", host) if r["status"] == "ok"]
    return rec["card"]


def federation_result(run, host):
    (rec,) = run.results("federation", host)
    return rec


def warnings_of(run, host):
    """The federation module's warnings on ``host`` (every message starts with the cluster name)."""
    rec = federation_result(run, host)
    if rec.get("warnings") is not None:
        return "\n".join(rec["warnings"])
    text = " ".join(run.output.split())
    return "\n".join(w for w in text.split("[WARNING]: ")[1:] if w.startswith(host + ":"))


def configmap(cluster, name, namespace=NS):
    return k8s.CoreV1Api(cluster.api_client()).read_namespaced_config_map(name, namespace)


def roots_in(cluster, cm_name):
    mesh = yaml.safe_load(configmap(cluster, cm_name).data["mesh"]) or {}
    return {e["pem"].strip(): e.get("trustDomains") for e in mesh.get("caCertificates") or []}


def custom(cluster, plural, namespace):
    api = k8s.CustomObjectsApi(cluster.api_client())
    return {i["metadata"]["name"]: i for i in
            api.list_namespaced_custom_object("networking.istio.io", "v1", namespace, plural)["items"]}


def owned(objs):
    return {n: o for n, o in objs.items()
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "meshfed.istio"}


def hosts_of(gateways):
    return sorted(h for gw in gateways.values() for s in gw["spec"]["servers"] for h in s["hosts"])


# -- the must-show scenario: DNS domain cluster.local on both, federated under <cluster>.local ------------
@pytest.fixture(scope="module")
def alias_pair(lab_clusters, tmp_path_factory):
    specs = {
        "cluster-a": spec("cluster-a"),
        "cluster-b": with_service_account(spec("cluster-b"), "bar", "bar-sa"),
    }
    hostvars = {"cluster-a": {"meshfed_federation_domain": "cluster-a.local"},
                "cluster-b": {"meshfed_federation_domain": "cluster-b.local"}}
    clusters, inv, run = federate(lab_clusters, tmp_path_factory, specs, hostvars, "alias")
    assert run.rc == 0, run
    return {"a": clusters["cluster-a"], "b": clusters["cluster-b"], "inv": inv, "run": run}


# names don't resolve ------------------------------------------------------------------------------
def test_dns_imports_have_a_stable_address_in_the_range(alias_pair):
    a = alias_pair["a"]
    se = kubeapi.se_by_host(a)[BAR_ALIAS]
    (address,) = se["spec"]["addresses"]
    assert ipaddress.ip_address(address) in DEFAULT_RANGE
    # every imported host has its own address
    addresses = [x for s in owned(kubeapi.service_entries(a)).values() for x in s["spec"].get("addresses") or []]
    assert len(addresses) == len(set(addresses)) >= 1
    # and keeps it: a rerun changes nothing
    rerun = run_playbook(alias_pair["inv"])
    assert rerun.rc == 0, rerun
    assert rerun.recap["cluster-a"]["changed"] == 0, rerun
    assert kubeapi.se_by_host(a)[BAR_ALIAS]["spec"]["addresses"] == [address]


def test_dns_capture_is_reported(alias_pair):
    assert card(alias_pair["run"], "cluster-b")["dns_capture"] is True
    assert "ISTIO_META_DNS_CAPTURE" not in warnings_of(alias_pair["run"], "cluster-a")


# the cluster domain is istiod's, and the alias is served by the exporting side -------------------------
def test_card_reads_the_cluster_domain_from_istiod(alias_pair):
    c = card(alias_pair["run"], "cluster-b")
    assert c["cluster_domain"] == "cluster.local"  # istiod --domain, not the trust domain
    assert c["trust_domain"] == "cluster-b.local"
    (svc,) = c["public_services"]
    assert svc["hostname"] == BAR_ALIAS


def test_alias_import_routes_to_the_peer_gateway(alias_pair):
    a, b = alias_pair["a"], alias_pair["b"]
    se = kubeapi.se_by_host(a)[BAR_ALIAS]
    assert se["spec"]["location"] == "MESH_INTERNAL"
    assert [e["address"] for e in se["spec"]["endpoints"]] == [kubeapi.gateway_ip(b)]
    assert BAR_REAL not in kubeapi.se_by_host(a)


def test_alias_is_served_by_the_exporting_gateway_registry(alias_pair):
    b = alias_pair["b"]
    assert hosts_of(owned(custom(b, "gateways", NS))) == [BAR_ALIAS]
    # the gateway's registry needs the alias host: a ServiceEntry selecting bar's own pods
    (alias,) = [s for s in owned(custom(b, "serviceentries", "xyz")).values() if s["spec"]["hosts"] == [BAR_ALIAS]]
    spec_ = alias["spec"]
    assert spec_["location"] == "MESH_INTERNAL"
    assert spec_["resolution"] == "STATIC"
    assert spec_["workloadSelector"] == {"labels": {"app": "bar"}}
    assert {p["number"]: p.get("targetPort") for p in spec_["ports"]} == {8080: 8080, 9090: 9090}
    assert NS in spec_["exportTo"] or "*" in spec_["exportTo"]
    assert not spec_.get("endpoints")


def test_alias_traffic_end_to_end_both_ways(alias_pair):
    """The must-show: DNS domain cluster.local on both, federated as <svc>.<ns>.svc.<cluster>.local; Istio's
    own config generation routes a -> b's gateway -> bar (and back to foo), names resolve, identities checked."""
    clusters = [alias_pair["a"], alias_pair["b"]]
    assert_traffic(clusters, "cluster-a", "cluster-b", BAR_ALIAS, 8080, require_server_identity=True)
    assert_traffic(clusters, "cluster-a", "cluster-b", BAR_ALIAS, 9090, require_server_identity=True)
    assert_traffic(clusters, "cluster-b", "cluster-a", FOO_ALIAS, 80, require_server_identity=True)


def test_custom_istiod_domain_is_exported_by_default(lab_clusters, tmp_path_factory):
    specs = {"cluster-a": spec("cluster-a"), "cluster-b": spec("cluster-b", cluster_domain="corp.example")}
    clusters, _inv, run = federate(lab_clusters, tmp_path_factory, specs, label="domain")
    assert run.rc == 0, run
    a, b = clusters["cluster-a"], clusters["cluster-b"]
    assert card(run, "cluster-b")["cluster_domain"] == "corp.example"
    assert "bar.xyz.svc.corp.example" in kubeapi.se_by_host(a)
    assert hosts_of(owned(custom(b, "gateways", NS))) == ["bar.xyz.svc.corp.example"]
    # cluster-a's istiod runs with the default domain: exported as such
    assert "foo.abc.svc.cluster.local" in kubeapi.se_by_host(b)
    assert_traffic([a, b], "cluster-a", "cluster-b", "bar.xyz.svc.corp.example", 8080)


# server identity -----------------------------------------------------------------------------------
def test_imports_check_the_server_identity(alias_pair):
    a, b = alias_pair["a"], alias_pair["b"]
    assert kubeapi.se_by_host(a)[BAR_ALIAS]["spec"]["subjectAltNames"] == ["spiffe://cluster-b.local/ns/xyz/sa/bar-sa"]
    assert kubeapi.se_by_host(b)[FOO_ALIAS]["spec"]["subjectAltNames"] == ["spiffe://cluster-a.local/ns/abc/sa/foo"]
    (svc,) = card(alias_pair["run"], "cluster-b")["public_services"]
    assert svc["service_accounts"] == ["bar-sa"]


# revisioned installs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def revision_pair(lab_clusters, tmp_path_factory):
    specs = {"cluster-a": spec("cluster-a", revision="canary"),
             "cluster-b": spec("cluster-b", revision="canary", stale_istio_configmap=True)}
    clusters, inv, run = federate(lab_clusters, tmp_path_factory, specs, label="revision")
    return {"a": clusters["cluster-a"], "b": clusters["cluster-b"], "inv": inv, "run": run}


def test_single_revision_is_found_and_written(revision_pair):
    a, b = revision_pair["a"], revision_pair["b"]
    # cluster-a has only istio-canary: that is where its istiod reads, and where trust goes
    assert revision_pair["run"].failed("cluster-a") == 0, revision_pair["run"]
    c = card(revision_pair["run"], "cluster-a")
    assert c["mesh_configmap"] == "istio-canary"
    assert "could not read Deployment" not in warnings_of(revision_pair["run"], "cluster-a")
    assert "not found" not in warnings_of(revision_pair["run"], "cluster-a")
    # cluster-b failed to gather in this run, so cluster-a holds nothing of it yet, and wrote no stale ConfigMap
    assert roots_in(a, "istio-canary") == {} and b.name == "cluster-b"


def test_stale_configmap_without_a_choice_is_an_error_listing_both(revision_pair):
    run, b = revision_pair["run"], revision_pair["b"]
    (facts,) = run.results("cluster_info", "cluster-b")
    assert facts["status"] == "failed"
    msg = facts["msg"]
    assert "cluster-b" in msg and "revision" in msg
    assert "istio-canary" in msg and re.search(r"\bistio\b(?!-)", msg), msg
    # nothing written anywhere on cluster-b
    assert roots_in(b, "istio") == {} and roots_in(b, "istio-canary") == {}


def test_revision_option_writes_trust_where_istiod_reads(revision_pair, tmp_path_factory):
    a, b = revision_pair["a"], revision_pair["b"]
    inv = write_inventory([a, b], tmp_path_factory.mktemp("rev2") / "inventory.yml",
                          extra_hostvars={"cluster-a": {}, "cluster-b": {"meshfed_revision": "canary"}})
    run = run_playbook(inv)
    assert run.rc == 0, run
    assert roots_in(b, "istio-canary") == {kubeapi.root_pem(a).strip(): ["cluster-a.local"]}
    assert roots_in(b, "istio") == {}  # the stale one is never written
    assert roots_in(a, "istio-canary") == {kubeapi.root_pem(b).strip(): ["cluster-b.local"]}


# existing east-west gateways -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eastwest_pair(lab_clusters, tmp_path_factory):
    specs = {"cluster-a": spec("cluster-a"),
             "cluster-b": spec("cluster-b", istio_gateways=[lab_seed.cross_network_gateway()])}
    clusters, inv, run = federate(lab_clusters, tmp_path_factory, specs, label="eastwest")
    assert run.rc == 0, run
    return {"a": clusters["cluster-a"], "b": clusters["cluster-b"], "inv": inv, "run": run}


def _passthrough_hosts_by_gateway(cluster, port=15443):
    out = {}
    for ns in (NS,):
        for name, gw in custom(cluster, "gateways", ns).items():
            for server in gw["spec"]["servers"]:
                if server["port"]["number"] == port and (server.get("tls") or {}).get("mode") == "AUTO_PASSTHROUGH":
                    out.setdefault("%s/%s" % (ns, name), []).extend(server["hosts"])
    return out


def test_existing_passthrough_server_is_reused_not_duplicated(eastwest_pair):
    b = eastwest_pair["b"]
    by_gw = _passthrough_hosts_by_gateway(b)
    assert by_gw.pop("istio-system/cross-network-gateway") == ["*.local"]
    # no second server on 15443 whose hosts overlap *.local: Envoy would reject the whole listener
    for name, hosts in by_gw.items():
        assert not [h for h in hosts if h.endswith(".local")], (name, hosts)
    text = warnings_of(eastwest_pair["run"], "cluster-b")
    assert "cross-network-gateway" in text and "not enforced" in text
    # the import on cluster-a is still there, and cluster-b's gateway passes it through *.local, its
    # listener intact (no duplicate filter chains)
    assert BAR_REAL in kubeapi.se_by_host(eastwest_pair["a"])
    assert_traffic([eastwest_pair["a"], b], "cluster-a", "cluster-b", BAR_REAL, 8080)


def test_clashing_server_is_refused_by_name(eastwest_pair):
    a, b = eastwest_pair["a"], eastwest_pair["b"]
    kubeapi.request(b, "DELETE", "/apis/networking.istio.io/v1/namespaces/%s/gateways/cross-network-gateway" % NS)
    # a plain TCP server on the same workload and port: Istio keeps one protocol per port and drops
    # the other server, so a passthrough server of ours could silently vanish
    lab_seed.upsert(b, {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                        "metadata": {"name": "legacy-tcp", "namespace": "default"},
                        "spec": {"selector": {"istio": "eastwestgateway"},
                                 "servers": [{"port": {"number": 15443, "name": "tcp", "protocol": "TCP"},
                                              "hosts": ["*"]}]}},
                    "kubectl-client-side-apply")
    run = run_playbook(eastwest_pair["inv"])
    rec = federation_result(run, "cluster-b")
    assert rec["status"] == "failed", run
    assert "default/legacy-tcp" in rec["msg"] and "cluster-b" in rec["msg"], rec["msg"]
    assert not owned(custom(b, "gateways", NS))
    # cluster-a is not harmed by cluster-b's refusal
    assert run.recap["cluster-a"]["failed"] == 0, run


# the installer reverts trust -------------------------------------------------------------------------
def test_installer_revert_is_reported_then_restored(eastwest_pair_clean):
    a, b, inv = eastwest_pair_clean
    seeded = lab_seed.mesh_text("cluster-b.local")
    kubeapi.set_mesh_text(b, seeded)  # what `helm upgrade` does to ConfigMap istio
    run = run_playbook(inv)
    assert run.rc == 0, run
    rec = federation_result(run, "cluster-b")
    assert [r for r in rec["summary"]["trust"]["reverted"] if "cluster-a" in r], rec["summary"]
    assert "reverted" in warnings_of(run, "cluster-b") or "disappeared" in warnings_of(run, "cluster-b")
    assert kubeapi.trusted(b) == {kubeapi.root_pem(a).strip(): ["cluster-a.local"]}


@pytest.fixture(scope="module")
def eastwest_pair_clean(lab_clusters, tmp_path_factory):
    clusters, inv, run = federate(lab_clusters, tmp_path_factory,
                                  {"cluster-a": spec("cluster-a"), "cluster-b": spec("cluster-b")}, label="revert")
    assert run.rc == 0, run
    return clusters["cluster-a"], clusters["cluster-b"], inv


def test_trust_mode_values_writes_nothing_and_emits_helm_values(lab_clusters, tmp_path_factory):
    specs = {"cluster-a": spec("cluster-a"), "cluster-b": spec("cluster-b")}
    hv = {"meshfed_trust_mode": "values"}
    clusters, inv, run = federate(lab_clusters, tmp_path_factory, specs, hv, label="values")
    assert run.rc == 0, run
    a, b = clusters["cluster-a"], clusters["cluster-b"]
    assert "caCertificates" not in (kubeapi.mesh(b) or {})
    trust = federation_result(run, "cluster-b")["trust"]
    entries = trust["helm_values"]["meshConfig"]["caCertificates"]
    assert [(e["pem"].strip(), e["trustDomains"]) for e in entries] == [(kubeapi.root_pem(a).strip(), ["cluster-a.local"])]
    assert trust["istio_operator"]["spec"]["meshConfig"]["caCertificates"] == entries
    assert trust["in_place"] is False
    # the user's pipeline installs them; the next run sees them live and changes nothing
    mesh = kubeapi.mesh(b)
    mesh["caCertificates"] = entries
    kubeapi.set_mesh_text(b, yaml.safe_dump(mesh))
    again = run_playbook(inv)
    assert again.rc == 0, again
    assert federation_result(again, "cluster-b")["trust"]["in_place"] is True
    assert again.recap["cluster-b"]["changed"] == 0, again


# the smaller ones --------------------------------------------------------------------------------------
SMALL_B_SERVICES = [
    {"namespace": "xyz", "name": "bar", "ports": [{"name": "http", "port": 8080}, {"name": "grpc-api", "port": 9090}],
     "replicas": 0},
    {"namespace": "foo-bar", "name": "baz", "ports": [{"name": "http", "port": 80}]},
    {"namespace": "foo", "name": "bar-baz", "ports": [{"name": "http", "port": 80}]},
    {"namespace": "xyz", "name": "raw", "ports": [{"port": 7000}]},
    {"namespace": "xyz", "name": "h2", "ports": [
        {"name": "web", "port": 8081, "appProtocol": "kubernetes.io/h2c"},
        {"name": "grpc-web", "port": 8082},
        {"name": "dns", "port": 5353, "protocol": "UDP"}]},
    {"namespace": "xyz", "name": "db", "cluster_ip": "None", "ports": [{"name": "tcp-db", "port": 5432}]},
    {"namespace": "other", "name": "skipme", "ports": [{"name": "http", "port": 80}]},
]


@pytest.fixture(scope="module")
def small_pair(lab_clusters, tmp_path_factory):
    gw = {"ip": lab_seed.gateway_ip_for("cluster-b"), "namespace": "istio-gateways",
          "ports": [{"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
                    {"name": "tls", "port": 15443, "targetPort": 8443, "protocol": "TCP"}]}
    specs = {"cluster-a": spec("cluster-a", dns_capture=False),
             "cluster-b": spec("cluster-b", public_services=SMALL_B_SERVICES, gateway=gw)}
    hostvars = {"cluster-a": {"meshfed_import_namespaces": ["abc"],
                              "meshfed_import_hosts": {"cluster-b": ["*.xyz.svc.*", "*.foo.svc.*", "*.foo-bar.svc.*"]}},
                "cluster-b": {"meshfed_gateway_namespace": "istio-gateways"}}
    clusters, inv, run = federate(lab_clusters, tmp_path_factory, specs, hostvars, label="small")
    assert run.rc == 0, run
    return {"a": clusters["cluster-a"], "b": clusters["cluster-b"], "inv": inv, "run": run}


def test_gateway_port_is_the_service_port_in_the_gateway_namespace(small_pair):
    b = small_pair["b"]
    assert not owned(custom(b, "gateways", NS))
    (gw,) = owned(custom(b, "gateways", "istio-gateways")).values()
    (server,) = gw["spec"]["servers"]
    assert server["port"]["number"] == 15443  # the Service port; istiod maps it to targetPort 8443


def test_imports_have_explicit_export_to(small_pair):
    a = small_pair["a"]
    for se in owned(kubeapi.service_entries(a)).values():
        assert se["spec"]["exportTo"] == ["abc"], se["metadata"]["name"]
    for dr in owned(kubeapi.destination_rules(a)).values():
        assert dr["spec"]["exportTo"] == ["abc"], dr["metadata"]["name"]


def test_protocols_as_istio_derives_them(small_pair):
    hosts = kubeapi.se_by_host(small_pair["a"])
    raw = hosts["raw.xyz.svc.cluster.local"]["spec"]["ports"]
    assert [p["number"] for p in raw] == [7000] and not raw[0].get("protocol")  # unnamed: Istio sniffs
    h2 = {p["number"]: p.get("protocol") for p in hosts["h2.xyz.svc.cluster.local"]["spec"]["ports"]}
    assert h2[8081] == "HTTP2"  # appProtocol kubernetes.io/h2c
    assert h2[8082].lower() == "grpc-web"
    assert 5353 not in h2  # UDP cannot cross the gateway


def test_names_are_injective(small_pair):
    hosts = kubeapi.se_by_host(small_pair["a"])
    one, two = hosts["baz.foo-bar.svc.cluster.local"], hosts["bar-baz.foo.svc.cluster.local"]
    assert one["metadata"]["name"] != two["metadata"]["name"]


def test_headless_service_is_exported(small_pair):
    c = card(small_pair["run"], "cluster-b")
    (db,) = [s for s in c["public_services"] if s["name"] == "db"]
    assert db["headless"] is True
    se = kubeapi.se_by_host(small_pair["a"])["db.xyz.svc.cluster.local"]
    assert [p["number"] for p in se["spec"]["ports"]] == [5432]


def test_per_peer_import_selection(small_pair):
    a = small_pair["a"]
    assert "skipme.other.svc.cluster.local" not in kubeapi.se_by_host(a)
    cached = [s["hostname"] for s in kubeapi.federations(a)["cluster-b"]["status"]["metadataCache"]["private"]["publicServices"]]
    assert "skipme.other.svc.cluster.local" not in cached and "baz.foo-bar.svc.cluster.local" in cached


def test_dns_off_breaks_only_the_dns_hop(small_pair):
    """cluster-a captures no DNS: Istio's own config generation finds every other hop working (the
    Gateway on the Service port in the gateway's namespace routes baz) and the name unresolvable."""
    report = check_traffic([small_pair["a"], small_pair["b"]], "cluster-a", "cluster-b",
                           "baz.foo-bar.svc.cluster.local", 80)
    assert report.failed == ["dns"], report


def test_no_pods_and_dns_off_are_warned(small_pair):
    run = small_pair["run"]
    assert "xyz/bar" in "\n".join(card(run, "cluster-b")["warnings"])
    text = warnings_of(run, "cluster-a")
    assert "ISTIO_META_DNS_CAPTURE" in text and "cluster-a" in text
    assert card(run, "cluster-a")["dns_capture"] is False
