import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.certs import CertError
from ansible_collections.meshfed.istio.plugins.module_utils.facts import (
    DEFAULT_PUBLIC_LABELS,
    FactsError,
    gather,
    port_protocol,
)

from ...conftest import make_cert
from ...fakes import CM, gateway, service, world


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
                               "target_port": 15443, "source": "LoadBalancer",
                               "service": {"namespace": "istio-system", "name": "istio-eastwestgateway"},
                               "selector": {"istio": "eastwestgateway"}}
    assert card["public_services"] == [{
        "name": "bar", "namespace": "xyz", "hostname": "bar.xyz.svc.cluster-b.local",
        "ports": [{"name": "http", "number": 8080, "protocol": "HTTP"},
                  {"name": "grpc-api", "number": 9090, "protocol": "GRPC"}],
        "service_accounts": []}]


def test_requests_are_constant_and_never_touch_secrets(root_pem):
    def run(n):
        client = world(root_pem, services=[service("ns%d" % i, "s", [{"name": "http", "port": 80}]) for i in range(n)])
        card = gather(client, params())
        assert len(card["public_services"]) == n
        return client
    one, many = run(1), run(200)
    assert one.calls == many.calls == {"get": 3, "list": 2}
    assert not [r for r in many.requests if "secret" in r[1]]


def test_deckhouse_label_is_accepted_and_duplicates_merged(root_pem):
    svc = service("xyz", "bar", [{"name": "http", "port": 80}])
    dk = service("xyz", "bar", [{"name": "http", "port": 80}], label=DEFAULT_PUBLIC_LABELS[1])
    other = service("web", "baz", [{"name": "tcp-db", "port": 5432}], label=DEFAULT_PUBLIC_LABELS[1])
    card = gather(world(root_pem, services=[svc], deckhouse=[dk, other]), params())
    assert [s["hostname"] for s in card["public_services"]] == ["bar.xyz.svc.cluster-b.local",
                                                                "baz.web.svc.cluster-b.local"]
    assert card["public_services"][1]["ports"][0]["protocol"] == "TCP"


def test_unnamed_udp_ports_and_external_name_warn_instead_of_crashing(root_pem):
    services = [service("a", "unnamed", [{"port": 80}]),
                service("a", "mixed", [{"port": 81}, {"name": "dns", "port": 53, "protocol": "UDP"},
                                       {"name": "http", "port": 8080}]),
                service("a", "ext", [{"name": "http", "port": 80}], type_="ExternalName")]
    card = gather(world(root_pem, services=services), params())
    assert [s["name"] for s in card["public_services"]] == ["mixed"]
    assert card["public_services"][0]["ports"] == [{"name": "http", "number": 8080, "protocol": "HTTP"}]
    text = "\n".join(card["warnings"])
    assert "Service a/unnamed port 80 has no name" in text
    assert "Service a/unnamed has no exportable" in text
    assert "port dns uses UDP" in text
    assert "Service a/ext is of type ExternalName" in text


def test_service_accounts_annotation(root_pem):
    svc = service("xyz", "bar", [{"name": "http", "port": 80}],
                  annotations={"federation.meshfed.io/service-accounts": "bar, bar-canary"})
    assert gather(world(root_pem, services=[svc]), params())["public_services"][0]["service_accounts"] == [
        "bar", "bar-canary"]


@pytest.mark.parametrize("name, app, expected", [
    ("http", None, "HTTP"), ("http-web", None, "HTTP"), ("http2", None, "HTTP2"), ("grpc-api", None, "GRPC"),
    ("https", None, "HTTPS"), ("tls-x", None, "TLS"), ("tcp", None, "TCP"), ("redis", None, "TCP"),
    ("web", "http", "HTTP"), ("api", "grpc", "GRPC"), ("http", "kubernetes.io/h2c", "HTTP"),
])
def test_protocol_from_app_protocol_or_name(name, app, expected):
    assert port_protocol(name, app) == expected


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
    client = world(root_pem)
    del client.objects[CM + "istio"]
    assert "ConfigMap istio-system/istio not found" in _error(client)
    client = world("garbage")
    with pytest.raises(CertError, match="cluster-b: ConfigMap istio-system/istio-ca-root-cert key root-cert.pem"):
        gather(client, params())
