"""Bad input, faults and least privilege, end to end against real lab API servers.

Each case asserts the message (cluster and field named) and the state of every cluster afterwards:
a failing cluster never costs the others what they already knew of it."""

import base64
import threading
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k8s

from tests.integration.ansible_run import REPO, run_playbook
from tests.integration.traffic import assert_traffic
from tests.lab import kubeapi
from tests.lab import seed as lab_seed
from tests.lab.pki import make_cert

pytestmark = pytest.mark.lab

BAR = "bar.xyz.svc.cluster-b.local"
ROOT_FIELD = "ConfigMap istio-system/istio-ca-root-cert key root-cert.pem"


def _cert(cn, **kwargs):
    _c, key, pem = make_cert(cn, **kwargs)
    return pem, key


def set_root_bundle(cluster, text):
    k8s.CoreV1Api(cluster.api_client()).patch_namespaced_config_map(
        "istio-ca-root-cert", "istio-system", {"data": {"root-cert.pem": text}})


def snapshot(cluster):
    """Everything the collection writes on a cluster, with resourceVersions: equal means untouched."""
    return {
        "se": {n: o["metadata"]["resourceVersion"] for n, o in kubeapi.service_entries(cluster).items()},
        "dr": {n: o["metadata"]["resourceVersion"] for n, o in kubeapi.destination_rules(cluster).items()},
        "fed": {n: o["metadata"]["resourceVersion"] for n, o in kubeapi.federations(cluster).items()},
        "mesh": kubeapi.mesh_text(cluster),
    }


def no_empty_endpoints(*clusters):
    for c in clusters:
        for name, se in kubeapi.service_entries(c).items():
            assert se["spec"].get("endpoints"), "%s: ServiceEntry %s has no endpoints" % (c.name, name)


@pytest.fixture(scope="module")
def pair(lab_clusters, tmp_path_factory):
    a, b = lab_clusters(["cluster-a", "cluster-b"])
    d = tmp_path_factory.mktemp("matrix")
    inv = d / "inventory.yml"
    from tests.lab.inventory import write_inventory
    write_inventory([a, b], inv)
    run = run_playbook(inv)
    assert run.rc == 0, run
    return {"a": a, "b": b, "inv": inv, "dir": d, "write": write_inventory}


def converge(pair):
    run = run_playbook(pair["inv"])
    assert run.rc == 0, run
    return run


def assert_b_failed_and_a_untouched(pair, run, before, message):
    assert run.rc != 0
    assert run.recap["cluster-b"]["failed"] == 1, run
    assert run.recap["cluster-a"]["failed"] == 0, run
    assert run.recap["cluster-a"]["changed"] == 0, run
    assert message in run.output, run
    assert snapshot(pair["a"]) == before  # nothing pruned on cluster-a because cluster-b failed
    assert "bar.xyz.svc.cluster-b.local" in kubeapi.se_by_host(pair["a"])


# -- 1. certificates -------------------------------------------------------------------------------
def _bad_bundles():
    expired = _cert("Expired Root", days_before=400, days_after=-1)[0]
    leaf = _cert("not-a-ca.example", ca=False)[0]
    root, key = _cert("Root With Key")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return [
        ("garbage", "this is not PEM at all", "holds no PEM CERTIFICATE block"),
        ("expired", expired, "certificate #1 (CN=Expired Root) expired on"),
        ("not-a-ca", leaf, "certificate #1 (CN=not-a-ca.example) is not a CA certificate"),
        ("private-key", root + key_pem, "contains a private key (PRIVATE KEY block); refused"),
    ]


@pytest.mark.parametrize("case, bundle, expected", _bad_bundles(), ids=[c[0] for c in _bad_bundles()])
def test_bad_root_bundle_rejects_that_cluster_only(pair, case, bundle, expected):
    b = pair["b"]
    good = kubeapi.root_pem(b)
    before = snapshot(pair["a"])
    set_root_bundle(b, bundle)
    try:
        run = run_playbook(pair["inv"])
        assert_b_failed_and_a_untouched(pair, run, before, "cluster-b: %s: %s" % (ROOT_FIELD, expected))
        if case == "private-key":
            body = [line for line in bundle.split("-----BEGIN PRIVATE KEY-----")[1].splitlines()
                    if line and not line.startswith("-----")]
            assert body and not any(line in run.output for line in body)
    finally:
        set_root_bundle(b, good)
    assert converge(pair).recap["cluster-a"]["changed"] == 0


# -- 2. gateway --------------------------------------------------------------------------------------
def test_gateway_service_missing(pair):
    b = pair["b"]
    before = snapshot(pair["a"])
    k8s.CoreV1Api(b.api_client()).delete_namespaced_service("istio-eastwestgateway", "istio-system")
    try:
        run = run_playbook(pair["inv"])
        assert_b_failed_and_a_untouched(
            pair, run, before, "cluster-b: gateway Service istio-system/istio-eastwestgateway not found "
                               "(field: gateway_service)")
        no_empty_endpoints(pair["a"], b)
    finally:
        lab_seed.seed_cluster(b, lab_seed.default_spec("cluster-b"), install_crds=False)
    converge(pair)


def test_load_balancer_without_address(pair):
    b = pair["b"]
    before = snapshot(pair["a"])
    lab_seed.set_gateway_ingress(b, [])
    try:
        run = run_playbook(pair["inv"])
        assert_b_failed_and_a_untouched(pair, run, before, "is a LoadBalancer with no address yet")
        no_empty_endpoints(pair["a"], b)
    finally:
        lab_seed.set_gateway_ingress(b, [{"ip": lab_seed.gateway_ip_for("cluster-b")}])
    assert converge(pair).recap["cluster-a"]["changed"] == 0


def test_node_port_without_ready_node(pair):
    b = pair["b"]
    core = k8s.CoreV1Api(b.api_client())
    before = snapshot(pair["a"])
    core.patch_namespaced_service("istio-eastwestgateway", "istio-system", {"spec": {"type": "NodePort"}})
    try:
        run = run_playbook(pair["inv"])
        assert_b_failed_and_a_untouched(pair, run, before, "is a NodePort but no Ready node has an ExternalIP "
                                                           "or InternalIP")
        no_empty_endpoints(pair["a"], b)
    finally:
        core.patch_namespaced_service("istio-eastwestgateway", "istio-system", {"spec": {"type": "LoadBalancer"}})
        lab_seed.set_gateway_ingress(b, [{"ip": lab_seed.gateway_ip_for("cluster-b")}])
    assert converge(pair).recap["cluster-a"]["changed"] == 0


# -- 3. hostname clashes ---------------------------------------------------------------------------
def test_hostname_clashes_name_both_sources_and_write_nothing(lab_clusters, inventory):
    def spec(name, port):
        s = lab_seed.default_spec(name)
        s["public_services"] = [{"namespace": "shared", "name": "api", "ports": [{"name": "http", "port": port}]}]
        return s
    c, d, e = lab_clusters(["cluster-c", "cluster-d", "cluster-e"],
                           spec={"cluster-c": spec("cluster-c", 80), "cluster-d": spec("cluster-d", 8080)})
    seeded_e = kubeapi.mesh_text(e)
    inv = inventory([c, d, e], extra_hostvars={"cluster-c": {"meshfed_cluster_domain": "fleet.local"},
                                               "cluster-d": {"meshfed_cluster_domain": "fleet.local"}})
    run = run_playbook(inv)
    assert run.rc != 0
    assert ("cluster-e: hostname api.shared.svc.fleet.local is exported by both cluster-c (ports http/80) and "
            "cluster-d (ports http/8080), with conflicting ports") in run.output, run
    assert ("cluster-c: peer cluster-d exports api.shared.svc.fleet.local (ports http/8080), but the local "
            "cluster serves that hostname itself") in run.output, run
    assert all(run.recap[n]["failed"] == 1 for n in ("cluster-c", "cluster-d", "cluster-e")), run
    for cl in (c, d, e):
        assert kubeapi.service_entries(cl) == {} and kubeapi.federations(cl) == {}
    assert kubeapi.mesh_text(e) == seeded_e


# -- 4. unreachable cluster, bad kubeconfig --------------------------------------------------------
def test_unreachable_cluster_keeps_what_others_know_and_recovers(pair):
    b = pair["b"]
    before = snapshot(pair["a"])
    b.stop_apiserver()
    try:
        run = run_playbook(pair["inv"])
        assert_b_failed_and_a_untouched(pair, run, before, "cluster-b: cannot reach the API server %s: "
                                                           "connection refused" % b.server)
        (result,) = run.results("federation", "cluster-a")
        assert "IstioFederation cluster-b" in result["summary"]["kept_unreachable"], result
        assert [root.split(" ")[1] for root in result["summary"]["trust"]["kept"]] == ["(cluster-b)"], result
    finally:
        b.start_apiserver()
    run = converge(pair)
    assert run.recap["cluster-a"]["changed"] == 0 and run.recap["cluster-b"]["changed"] == 0
    assert snapshot(pair["a"]) == before


@pytest.mark.parametrize("hostvars, expected", [
    ({"meshfed_kubeconfig": "/nonexistent/kubeconfig"},
     "cluster-b: kubeconfig /nonexistent/kubeconfig does not exist (field: kubeconfig)"),
    ({"meshfed_context": "no-such-context"},
     "cluster-b: context 'no-such-context' is not in kubeconfig"),
], ids=["missing-file", "unknown-context"])
def test_bad_kubeconfig_fails_that_host_only(pair, hostvars, expected):
    inv = pair["dir"] / "bad.yml"
    pair["write"]([pair["a"], pair["b"]], inv, extra_hostvars={"cluster-b": hostvars})
    before = snapshot(pair["a"])
    run = run_playbook(inv)
    assert_b_failed_and_a_untouched(pair, run, before, expected)


# -- 5. mesh config --------------------------------------------------------------------------------
def test_invalid_mesh_yaml_is_an_error_not_a_reset(pair):
    a, b = pair["a"], pair["b"]
    good = kubeapi.mesh_text(a)
    broken = good + "meshNetworks: [unclosed\n"
    kubeapi.set_mesh_text(a, broken)
    before_b = snapshot(b)
    try:
        run = run_playbook(pair["inv"])
        assert run.recap["cluster-a"]["failed"] == 1
        assert "cluster-a: ConfigMap istio key mesh is not valid YAML at line" in run.output, run
        assert kubeapi.mesh_text(a) == broken  # byte for byte: never rewritten
        assert snapshot(b) == before_b      # cluster-b keeps cluster-a's entries and trust
    finally:
        kubeapi.set_mesh_text(a, good)
    assert converge(pair).recap["cluster-a"]["changed"] == 0


# -- 8. root rotation --------------------------------------------------------------------------------
def test_root_rotation_trusts_both_then_drops_the_old(pair):
    a, b = pair["a"], pair["b"]
    old = kubeapi.root_pem(b).strip()
    new, _key = _cert("Root cluster-b 2027")
    set_root_bundle(b, new + old + "\n")
    try:
        converge(pair)
        assert kubeapi.trusted(a) == {new.strip(): ["cluster-b.local"], old: ["cluster-b.local"]}
        # during the rotation a's proxies trust both of b's roots: the path holds
        assert_traffic([a, b], "cluster-a", "cluster-b", BAR, 8080)
        set_root_bundle(b, new)
        converge(pair)
        assert kubeapi.trusted(a) == {new.strip(): ["cluster-b.local"]}
        assert kubeapi.federations(a)["cluster-b"]["spec"]["rootCAFingerprints"] != []
        assert_traffic([a, b], "cluster-a", "cluster-b", BAR, 8080)
    finally:
        set_root_bundle(b, old + "\n")
    converge(pair)
    assert kubeapi.trusted(a) == {old: ["cluster-b.local"]}
    assert_traffic([a, b], "cluster-a", "cluster-b", BAR, 8080)


# -- 6. least privilege ------------------------------------------------------------------------------
RBAC = sorted((REPO / "meta" / "rbac").glob("*.yaml"))


def rbac_docs():
    return [yaml.safe_load(p.read_text()) for p in RBAC]


def sa_kubeconfig(cluster, path):
    for doc in rbac_docs():
        kubeapi.apply(cluster, doc)
    token = k8s.CoreV1Api(cluster.api_client()).create_namespaced_service_account_token(
        "meshfed-istio", "meshfed", {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cfg = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
           "users": [{"name": "meshfed-istio", "user": {"token": token}}],
           "contexts": [{"name": cluster.name, "context": {"cluster": admin["clusters"][0]["name"],
                                                           "user": "meshfed-istio"}}],
           "current-context": cluster.name}
    path.write_text(yaml.safe_dump(cfg))
    return token


def test_shipped_roles_grant_nothing_on_secrets():
    for doc in rbac_docs():
        for rule in doc.get("rules") or []:
            assert "secrets" not in rule["resources"] and "*" not in rule["resources"]
            assert "*" not in rule["verbs"]


def test_least_privilege_service_account_runs_the_playbook(pair):
    a, b = pair["a"], pair["b"]
    tokens = {c.name: sa_kubeconfig(c, pair["dir"] / ("%s-sa.yaml" % c.name)) for c in (a, b)}
    inv = pair["dir"] / "sa.yml"
    pair["write"]([a, b], inv, extra_hostvars={c.name: {"meshfed_kubeconfig": str(pair["dir"] / ("%s-sa.yaml" % c.name))}
                                               for c in (a, b)})
    lab_seed.set_public(b, "xyz", "secret", True)
    try:
        run = run_playbook(inv)
        assert run.rc == 0, run
        assert "secret.xyz.svc.cluster-b.local" in kubeapi.se_by_host(a)
        assert run_playbook(inv).recap["cluster-a"]["changed"] == 0
        # the token cannot read the plug-in CA secret
        with pytest.raises(k8s.rest.ApiException) as err:
            k8s.CoreV1Api(a.token_client(tokens["cluster-a"])).read_namespaced_secret("cacerts", "istio-system")
        assert err.value.status == 403
    finally:
        lab_seed.set_public(b, "xyz", "secret", False)
    assert run_playbook(inv).rc == 0


def test_missing_verb_gives_a_clear_forbidden_error(pair):
    a, b = pair["a"], pair["b"]
    sa_kubeconfig(a, pair["dir"] / "cluster-a-sa.yaml")
    # the shipped manifest that grants patch on ServiceEntries, applied without that one verb
    (role,) = [r for r in (yaml.safe_load((REPO / "meta" / "rbac" / f).read_text())
                           for f in ("role.yaml", "clusterrole.yaml"))
               if any("serviceentries" in rule["resources"] and "patch" in rule["verbs"] for rule in r["rules"])]
    crippled = yaml.safe_load(yaml.safe_dump(role))
    for rule in list(crippled["rules"]):
        if "serviceentries" in rule["resources"] and "patch" in rule["verbs"]:
            rest = dict(rule, resources=[r for r in rule["resources"] if r != "serviceentries"])
            rule["resources"], rule["verbs"] = ["serviceentries"], [v for v in rule["verbs"] if v != "patch"]
            if rest["resources"]:
                crippled["rules"].append(rest)
    kubeapi.apply(a, crippled)
    inv = pair["dir"] / "sa-a.yml"
    pair["write"]([a, b], inv, extra_hostvars={"cluster-a": {"meshfed_kubeconfig": str(pair["dir"] / "cluster-a-sa.yaml")}})
    lab_seed.set_public(b, "xyz", "secret", True)
    try:
        run = run_playbook(inv)
        assert run.recap["cluster-a"]["failed"] == 1
        assert "cluster-a: forbidden:" in run.output
        assert 'cannot patch resource "serviceentries" in API group "networking.istio.io"' in run.output, run
    finally:
        kubeapi.apply(a, role)
        lab_seed.set_public(b, "xyz", "secret", False)
    converge(pair)


# -- 7. concurrent runs ----------------------------------------------------------------------------
def test_two_concurrent_runs_both_succeed_and_converge(pair):
    a, b = pair["a"], pair["b"]
    for public in (True, False, True, False):
        lab_seed.set_public(b, "xyz", "secret", public)
        results = [None, None]

        def go(i):
            results[i] = run_playbook(pair["inv"])
        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            assert r.rc == 0, r
        assert ("secret.xyz.svc.cluster-b.local" in kubeapi.se_by_host(a)) is public
        cas = kubeapi.mesh(a)["caCertificates"]
        assert len(cas) == 1  # no duplicate trust entries from the race
        final = converge(pair)
        assert final.recap["cluster-a"]["changed"] == 0 and final.recap["cluster-b"]["changed"] == 0


# -- 9. nothing secret in the output ---------------------------------------------------------------
def test_no_private_key_token_or_kubeconfig_in_verbose_diff_output(pair):
    a, b = pair["a"], pair["b"]
    token = sa_kubeconfig(b, pair["dir"] / "cluster-b-sa.yaml")
    inv = pair["dir"] / "secret-check.yml"
    pair["write"]([a, b], inv, extra_hostvars={
        "cluster-a": {"meshfed_kubeconfig": "", "meshfed_context": "", "meshfed_host": a.server,
                      "meshfed_ca_cert": str(a.ca_file), "meshfed_api_key": sa_kubeconfig(a, pair["dir"] / "a.yaml")},
        "cluster-b": {"meshfed_kubeconfig": str(pair["dir"] / "cluster-b-sa.yaml")}})
    api_key_a = yaml.safe_load((pair["dir"] / "a.yaml").read_text())["users"][0]["user"]["token"]
    lab_seed.set_public(b, "xyz", "secret", True)
    try:
        outputs = [run_playbook(inv, "-vvv", "--diff", "--check"), run_playbook(inv, "-vvv", "--diff")]
    finally:
        lab_seed.set_public(b, "xyz", "secret", False)
    converge(pair)
    for run in outputs:
        assert run.rc == 0, run
        text = run.output
        assert "secret.xyz.svc.cluster-b.local" in text  # the diff really was printed
        forbidden = {"cluster-b SA token": token, "cluster-a api_key": api_key_a}
        for c in (a, b):
            key_pem = lab_seed.read_cacerts(c)["ca-key.pem"]
            for i, line in enumerate(l for l in key_pem.splitlines() if not l.startswith("-----")):
                forbidden["%s ca-key.pem line %d" % (c.name, i)] = line
            admin = yaml.safe_load(Path(c.kubeconfig).read_text())
            key_data = admin["users"][0]["user"]["client-key-data"]
            forbidden["%s client-key-data" % c.name] = key_data
            for i, line in enumerate(l for l in base64.b64decode(key_data).decode().splitlines()
                                     if not l.startswith("-----")):
                forbidden["%s client key line %d" % (c.name, i)] = line
        assert len(forbidden) > 10
        leaked = [what for what, value in forbidden.items() if value and value in text]
        assert leaked == []
