"""Realistic cluster cards for planner/reconciler tests (see docs/design.md)."""

import copy

from .conftest import make_cert

_PEMS = {}


def root_pem(name):
    if name not in _PEMS:
        _PEMS[name] = make_cert("Root %s" % name)[2]
    return _PEMS[name]


def card(name, services=None, addresses=None, domain=None):
    from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
    domain = domain or "%s.local" % name
    addresses = addresses or ["192.0.2.%d" % (10 + ord(name[-1]) - ord("a"))]
    services = services if services is not None else [("web", "svc-%s" % name, [("http", 80, "HTTP")])]
    pem = root_pem(name)
    return copy.deepcopy({
        "name": name,
        "trust_domain": "%s.local" % name,
        "cluster_domain": domain,
        "istio_namespace": "istio-system",
        "root_cas": [{"pem": pem, "sha256": pem_sha256(pem), "subject": "CN=Root %s" % name,
                      "not_after": "2036-11-24T00:00:00Z"}],
        "gateway": {"addresses": addresses,
                    "resolution": "STATIC" if addresses[0][0].isdigit() else "DNS",
                    "port": 15443, "target_port": 15443, "source": "LoadBalancer",
                    "service": {"namespace": "istio-system", "name": "istio-eastwestgateway"},
                    "selector": {"istio": "eastwestgateway"}},
        "public_services": [
            {"name": svc, "namespace": ns, "hostname": "%s.%s.svc.%s" % (svc, ns, domain),
             "ports": [{"name": p, "number": n, "protocol": proto} for p, n, proto in ports],
             "service_accounts": []}
            for ns, svc, ports in services
        ],
        "warnings": [],
    })


# The seed scenario's services: cluster-a exports foo.abc, cluster-b exports bar.xyz (two ports).
FOO = [("abc", "foo", [("http", 80, "HTTP")])]
BAR = [("xyz", "bar", [("http", 8080, "HTTP"), ("grpc-api", 9090, "GRPC")])]
