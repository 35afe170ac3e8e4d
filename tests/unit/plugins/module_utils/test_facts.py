import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import CertError
from ansible_collections.meshfed.istio.plugins.module_utils.gather.facts import (
    DEFAULT_PUBLIC_LABELS,
    FactsError,
    gather,
)
from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import port_protocol

from ...conftest import make_cert
from ...fakes import gateway, istiod, pod, service, world


@pytest.fixture(scope="module")
def root_pem():
    return make_cert("Root cluster-b")[2]


def params(**kw):
    p = {"cluster": "cluster-b", "istio_namespace": "istio-system", "gateway_namespace": "istio-system",
         "gateway_service": "istio-eastwestgateway", "gateway_addresses": [], "gateway_port": None,
         "public_labels": list(DEFAULT_PUBLIC_LABELS), "trust_domain": None, "cluster_domain": None}
    p.update(kw)
    return p


def test_card_of_the_seed_scenario(root_pem):
    client = world(root_pem, services=[service("xyz", "bar", [{"name": "http", "port": 8080},
                                                              {"name": "grpc-api", "port": 9090}])])
    card = gather(client, params())
    assert card["name"] == "cluster-b" and card["trust_domain"] == "cluster-b.local"
    assert card["cluster_domain"] == "cluster-b.local"
    assert card["root_cas"][0]["subject"] == "CN=Root cluster-b"
    assert card["gateway"] == {"addresses": ["192.0.2.11"], "resolution": "STATIC", "port": 15443,
                               "service_port": 15443, "target_port": 15443, "source": "LoadBalancer",
                               "service": {"namespace": "istio-system", "name": "istio-eastwestgateway"},
                               "selector": {"istio": "eastwestgateway"}, "service_ports": [15021, 15443],
                               "pod_labels": [{"istio": "eastwestgateway"}]}
    assert card["public_services"] == [{
        "name": "bar", "namespace": "xyz", "hostname": "bar.xyz.svc.cluster-b.local",
        "service_hostname": "bar.xyz.svc.cluster-b.local",
        "ports": [{"name": "http", "number": 8080, "protocol": "HTTP", "target_port": 8080},
                  {"name": "grpc-api", "number": 9090, "protocol": "GRPC", "target_port": 9090}],
        "service_accounts": [], "headless": False, "selector": {}}]
    assert card["revision"] == "default" and card["mesh_configmap"] == "istio"
    assert card["istiod"] == {"deployment": "istiod", "scope_gateway_to_namespace": False}
    assert card["dns_capture"] is False and card["federation_domain"] == "cluster-b.local"


def test_requests_are_constant_and_never_touch_secrets(root_pem):
    def run(n):
        services = [service("ns%d" % i, "s", [{"name": "http", "port": 80}]) for i in range(n)]
        for i, svc in enumerate(services):
            svc["spec"]["selector"] = {"app": "s%d" % i}
        pods = [pod("ns%d" % i, "s-1", {"app": "s%d" % i}, "sa%d" % i) for i in range(n)]
        client = world(root_pem, services=services, pods=pods)
        card = gather(client, params())
        assert [s["service_accounts"] for s in card["public_services"]] == [["sa%d" % i] for i in sorted(
            range(n), key=lambda i: "s.ns%d" % i)]
        return client
    one, many = run(1), run(200)
    # ConfigMaps, Deployments, 2 labels, Pods of the gateway's key and of the Services' key
    assert one.calls == many.calls == {"get": 2, "list": 6}
    assert not [r for r in many.requests if "secret" in r[1]]
    pod_lists = [r[2] for r in many.requests if r[1] == "/api/v1/pods"]
    assert pod_lists == ["app in (%s)" % ",".join(sorted("s%d" % i for i in range(200))), "istio in (eastwestgateway)"]


def test_pods_are_listed_once_per_shared_selector_key(root_pem):
    """Each selector is asked for by the key most selectors share (ties: the first by name); a selector
    with an empty value, by its key alone."""
    selectors = [{"app": "a", "version": "v1"}, {"version": "v2"}, {"app": "b", "tier": ""}, {"tier": ""}]
    services = [service("ns", "s%d" % i, [{"name": "http", "port": 80}]) for i in range(len(selectors))]
    for svc, selector in zip(services, selectors):
        svc["spec"]["selector"] = selector
    pods = [pod("ns", "p%d" % i, dict(selector, extra="x"), "sa%d" % i) for i, selector in enumerate(selectors)]
    client = world(root_pem, services=services, pods=pods)
    card = gather(client, params())
    assert [r[2] for r in client.requests if r[1] == "/api/v1/pods"] == [
        "app in (a,b)", "istio in (eastwestgateway)", "tier", "version in (v2)"]
    # every Service still gets the pods its whole selector picks, and no other
    assert [s["service_accounts"] for s in card["public_services"]] == [["sa0"], ["sa1"], ["sa2"], ["sa2", "sa3"]]


def test_deckhouse_label_is_accepted_and_duplicates_merged(root_pem):
    svc = service("xyz", "bar", [{"name": "http", "port": 80}])
    dk = service("xyz", "bar", [{"name": "http", "port": 80}], label=DEFAULT_PUBLIC_LABELS[1])
    other = service("web", "baz", [{"name": "tcp-db", "port": 5432}], label=DEFAULT_PUBLIC_LABELS[1])
    card = gather(world(root_pem, services=[svc], deckhouse=[dk, other]), params())
    assert [s["hostname"] for s in card["public_services"]] == ["bar.xyz.svc.cluster-b.local",
                                                                "baz.web.svc.cluster-b.local"]
    assert card["public_services"][1]["ports"][0]["protocol"] == "TCP"


def test_unnamed_udp_ports_and_external_name(root_pem):
    services = [service("a", "unnamed", [{"port": 7000}]),
                service("a", "udp", [{"name": "dns", "port": 53, "protocol": "UDP"}]),
                service("a", "mixed", [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "http", "port": 8080}]),
                service("a", "ext", [{"name": "http", "port": 80}], type_="ExternalName")]
    card = gather(world(root_pem, services=services), params())
    assert [s["name"] for s in card["public_services"]] == ["mixed", "unnamed"]
    assert card["public_services"][0]["ports"] == [{"name": "http", "number": 8080, "protocol": "HTTP",
                                                    "target_port": 8080}]
    # an unnamed port is exported as Istio treats it: named for the ServiceEntry, protocol sniffed
    assert card["public_services"][1]["ports"] == [{"name": "port-7000", "number": 7000, "protocol": "",
                                                    "target_port": 7000}]
    text = "\n".join(card["warnings"])
    assert "Service a/udp has no exportable" in text
    assert "port dns uses UDP" in text
    assert "Service a/ext is of type ExternalName" in text


def test_service_accounts_annotation(root_pem):
    svc = service("xyz", "bar", [{"name": "http", "port": 80}],
                  annotations={"federation.meshfed.io/service-accounts": "bar, bar-canary"})
    assert gather(world(root_pem, services=[svc]), params())["public_services"][0]["service_accounts"] == [
        "bar", "bar-canary"]


@pytest.mark.parametrize("name, app, expected", [
    ("http", None, "HTTP"), ("http-web", None, "HTTP"), ("http2", None, "HTTP2"), ("grpc-api", None, "GRPC"),
    ("https", None, "HTTPS"), ("tls-x", None, "TLS"), ("tcp", None, "TCP"), ("redis", None, "Redis"),
    ("web", "http", "HTTP"), ("api", "grpc", "GRPC"), ("http", "kubernetes.io/h2c", "HTTP2"), ("web", None, ""),
])
def test_protocol_from_app_protocol_or_name(name, app, expected):
    assert port_protocol(0, name, "TCP", app) == expected


def test_hostname_load_balancer_resolves_by_dns(root_pem):
    card = gather(world(root_pem, gw=gateway(ingress=[{"hostname": "lb.b.example"}])), params())
    assert card["gateway"]["addresses"] == ["lb.b.example"] and card["gateway"]["resolution"] == "DNS"


def _error(client, **kw):
    with pytest.raises(FactsError) as err:
        gather(client, params(**kw))
    assert str(err.value).startswith("cluster-b: ")
    return str(err.value)


def test_gateway_errors(root_pem):
    assert "gateway Service istio-system/istio-eastwestgateway not found" in _error(world(root_pem, gw=False))
    assert "LoadBalancer with no address yet" in _error(world(root_pem, gw=gateway(ingress=[])))
    assert "is of type ClusterIP" in _error(world(root_pem, gw=gateway(type_="ClusterIP")))
    assert "no Ready node" in _error(world(root_pem, gw=gateway(type_="NodePort")))
    assert "has no port 15444" in _error(world(root_pem), gateway_port=15444)
    mixed = gateway(ingress=[{"ip": "192.0.2.1"}, {"hostname": "lb.example"}])
    assert "mix IPs and hostnames" in _error(world(root_pem, gw=mixed))


def test_node_port_uses_ready_nodes_external_then_internal_ip(root_pem):
    def node(ready, **addresses):
        return {"status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                           "addresses": [{"type": t, "address": a} for t, a in addresses.items()]}}
    nodes = [node(True, ExternalIP="198.51.100.1", InternalIP="10.0.0.1"), node(True, InternalIP="10.0.0.2"),
             node(False, ExternalIP="198.51.100.9")]
    card = gather(world(root_pem, gw=gateway(type_="NodePort"), nodes=nodes), params())
    assert card["gateway"]["addresses"] == ["10.0.0.2", "198.51.100.1"]
    assert card["gateway"]["port"] == 31443 and card["gateway"]["source"] == "NodePort"


def test_override_addresses_win_and_work_without_a_service(root_pem):
    card = gather(world(root_pem, gw=False), params(gateway_addresses=["gw.b.example"]))
    assert card["gateway"]["addresses"] == ["gw.b.example"] and card["gateway"]["port"] == 15443
    assert card["gateway"]["source"] == "override"


def test_missing_mesh_configmap_and_bad_root(root_pem):
    assert "ConfigMap istio-system/istio not found" in _error(world(root_pem, configmaps=[]))
    client = world("garbage")
    with pytest.raises(CertError, match="cluster-b: ConfigMap istio-system/istio-ca-root-cert key root-cert.pem"):
        gather(client, params())


# -- the Istio install the card describes: revision, mesh ConfigMap, istiod domain, aliases, DNS capture ------------
MESH_TEXT = "trustDomain: cluster-b.local\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n"


def _cm(name, mesh=MESH_TEXT):
    return {"metadata": {"name": name}, "data": {"mesh": mesh}}


def test_domain_is_istiods_and_alias_is_optional(root_pem):
    bar_svc = service("xyz", "bar", [{"name": "http", "port": 8080, "targetPort": "web"}])
    bar_svc["spec"]["selector"] = {"app": "bar"}
    pods = [pod("xyz", "bar-1", {"app": "bar"}, "bar-sa", ports=[{"name": "web", "containerPort": 18080}])]
    client = world(root_pem, services=[bar_svc], istiods=[istiod(domain="cluster.local")], pods=pods)
    card = gather(client, params())
    assert card["cluster_domain"] == card["federation_domain"] == "cluster.local"
    assert card["public_services"][0]["hostname"] == "bar.xyz.svc.cluster.local"
    card = gather(world(root_pem, services=[bar_svc], istiods=[istiod(domain="cluster.local")], pods=pods),
                  params(federation_domain="cluster-b.local"))
    (svc,) = card["public_services"]
    assert (svc["hostname"], svc["service_hostname"]) == ("bar.xyz.svc.cluster-b.local", "bar.xyz.svc.cluster.local")
    assert svc["selector"] == {"app": "bar"} and svc["ports"][0]["target_port"] == 18080
    assert svc["service_accounts"] == ["bar-sa"]
    card = gather(world(root_pem, services=[bar_svc], istiods=[istiod(domain="cluster.local")], pods=pods),
                  params(cluster_domain="corp.example"))
    assert card["public_services"][0]["hostname"] == "bar.xyz.svc.corp.example"
    assert card["cluster_domain"] == card["federation_domain"] == "corp.example"  # the option overrides istiod's --domain


def test_alias_needs_a_selector_and_numeric_ports(root_pem):
    no_selector = service("xyz", "manual", [{"name": "http", "port": 80}])
    named = service("xyz", "named", [{"name": "http", "port": 80, "targetPort": "web"}])
    named["spec"]["selector"] = {"app": "named"}
    card = gather(world(root_pem, services=[no_selector, named]), params(federation_domain="cluster-b.example"))
    assert card["public_services"] == []
    text = "\n".join(card["warnings"])
    assert "Service xyz/manual has no selector" in text and "federation_domain" in text
    assert "Service xyz/named: the named targetPort of port(s) http" in text


def test_no_pods_warns_and_dns_capture_is_reported(root_pem):
    bar_svc = service("xyz", "bar", [{"name": "http", "port": 8080}])
    bar_svc["spec"]["selector"] = {"app": "bar"}
    card = gather(world(root_pem, services=[bar_svc], mesh=MESH_TEXT), params())
    assert card["dns_capture"] is True
    assert "cluster-b: Service xyz/bar has no pods yet" in "\n".join(card["warnings"])
    assert card["public_services"][0]["headless"] is False


def test_revision_selection(root_pem):
    canary = istiod("istiod-canary", labels={"app": "istiod", "istio.io/rev": "canary"})
    only = gather(world(root_pem, configmaps=[_cm("istio-canary")], istiods=[canary]), params())
    assert (only["revision"], only["mesh_configmap"], only["istiod"]["deployment"]) == (
        "canary", "istio-canary", "istiod-canary")
    stale = world(root_pem, configmaps=[_cm("istio"), _cm("istio-canary")], istiods=[canary])
    msg = _error(stale)
    assert "2 mesh ConfigMaps in istio-system: istio (no istiod Deployment reads it), istio-canary (read by " \
           "Deployment istiod-canary); set revision (field: revision)" in msg
    chosen = gather(world(root_pem, configmaps=[_cm("istio"), _cm("istio-canary")], istiods=[canary]),
                    params(revision="canary"))
    assert chosen["mesh_configmap"] == "istio-canary"
    assert "revision blue: ConfigMap istio-system/istio-blue not found (field: revision)" in _error(
        world(root_pem, configmaps=[_cm("istio")]), revision="blue")
    orphan = gather(world(root_pem, istiods=[]), params())
    assert "no istiod Deployment of revision default" in "\n".join(orphan["warnings"])


def test_gateway_target_port_and_pods(root_pem):
    gw = gateway(ports=[{"name": "tls", "port": 15443, "targetPort": 8443}])
    gw_pod = pod("istio-system", "ew-1", {"istio": "eastwestgateway", "topology.istio.io/network": "n1"}, "ew")
    card = gather(world(root_pem, gw=gw, pods=[gw_pod]), params())
    assert (card["gateway"]["port"], card["gateway"]["service_port"], card["gateway"]["target_port"]) == (
        15443, 15443, 8443)
    assert card["gateway"]["pod_labels"] == [{"istio": "eastwestgateway", "topology.istio.io/network": "n1"}]


def test_trust_domain_option_overrides_the_mesh_config(root_pem):
    card = gather(world(root_pem), params(trust_domain="override.local"))
    assert card["trust_domain"] == "override.local" and "mesh" not in card
