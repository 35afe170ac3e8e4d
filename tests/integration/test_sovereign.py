"""Sovereign clusters federated through published metadata, no credentials to the peer.

Two teams, two inventories, two separate ansible-playbook runs: team A holds only cluster-a's
kubeconfig and reaches cluster-b through cluster-b's signed metadata, served over HTTPS on loopback
(lab CA, pinned); team B is the mirror image. A Deckhouse-protocol peer (tests/lab/metadata_server.py,
an exporter that checks Deckhouse's JWT) joins team A's inventory. Refusals (tampering, unknown signer,
expiry, wrong TLS certificate) are proven against the real clusters: the run fails naming the peer and
the reason, and nothing cluster-a holds for cluster-b is removed.
"""

import datetime
import json
import os
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.ansible_run import COLLECTIONS, ensure_collection_link, run_playbook
from tests.integration.traffic import assert_traffic
from tests.lab import kubeapi
from tests.lab import metadata_server as servers
from tests.lab import pki

ensure_collection_link()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import utcnow  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.meshfed.istio.plugins.module_utils.metadata.fetch import PeerSpec, fetch_peer  # noqa: E402
from ansible_collections.meshfed.istio.plugins.module_utils.metadata.publish import (  # noqa: E402
    ALL_PATHS, default_cluster_uuid, parse_time, plan_publication)
from ansible_collections.meshfed.istio.plugins.module_utils.pki.jose import (  # noqa: E402
    generate_private_key_pem, key_fingerprint, load_private_key, make_jwt)

pytestmark = pytest.mark.lab

BAR = "bar.xyz.svc.cluster-b.local"
FOO = "foo.abc.svc.cluster-a.local"
ECHO = "echo.apps.svc.d8.example"
D8_UUID = "3b8a4c1e-d8d8-4d8d-8d8d-0000000000d8"


def _inventory(path, hosts):
    data = {"all": {"children": {"meshfed_clusters": {
        "hosts": hosts,
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
    }}}}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Team:
    """One team's controller: its own cluster's kubeconfig, its key, its published directory."""

    def __init__(self, root, cluster):
        self.cluster = cluster
        self.dir = root / ("team-" + cluster.name)
        self.dir.mkdir()
        self.key_file = self.dir / (cluster.name + ".key")
        self.key_file.write_text(generate_private_key_pem())
        os.chmod(self.key_file, 0o600)
        self.key = load_private_key(self.key_file.read_bytes(), cluster.name)
        self.signer = key_fingerprint(self.key.public_key())
        self.published = self.dir / "published"
        self.uuid = default_cluster_uuid(cluster.name)
        self.ca_pem, cert_pem, key_pem = servers.serving_pki("metadata." + cluster.name)
        self.tls = (cert_pem, key_pem)
        self.published.mkdir()
        self.server = servers.StaticMetadataServer(self.published, *self.tls)

    def own_host(self):
        return {"meshfed_kubeconfig": str(Path(self.cluster.kubeconfig).resolve()),
                "meshfed_context": self.cluster.context,
                "meshfed_metadata_publish_dir": str(self.published),
                "meshfed_metadata_key_file": str(self.key_file)}

    def as_peer(self, url=None):
        """How the *other* team's inventory names this cluster: coordinates and pins, no credentials."""
        return {"meshfed_metadata_url": url or self.server.url + "/",
                "meshfed_metadata_signer_key": self.signer,
                "meshfed_metadata_ca": self.ca_pem}

    def inventory(self, other, name="inventory.yml", peer=None, extra_hosts=None):
        hosts = {self.cluster.name: self.own_host(), other.cluster.name: peer or other.as_peer()}
        hosts.update(extra_hosts or {})
        return _inventory(self.dir / name, hosts)


@pytest.fixture(scope="module")
def world(lab_clusters, tmp_path_factory):
    a, b = lab_clusters(["cluster-a", "cluster-b"])
    root = tmp_path_factory.mktemp("sovereign")
    team_a, team_b = Team(root, a), Team(root, b)
    inv_a, inv_b = team_a.inventory(team_b), team_b.inventory(team_a)
    runs = {}
    # team A goes first: it publishes; cluster-b has published nothing yet, so it only publishes
    runs["a0"] = run_playbook(inv_a, "--limit", "cluster-a")
    runs["b1"] = run_playbook(inv_b)          # team B: publishes, fetches cluster-a, federates
    runs["a1"] = run_playbook(inv_a)          # team A: fetches cluster-b, federates
    for name, run in runs.items():
        (root / ("run-%s.log" % name)).write_text(run.output)
    yield {"a": a, "b": b, "team_a": team_a, "team_b": team_b, "inv_a": inv_a, "inv_b": inv_b, "runs": runs,
           "root": root}
    team_a.server.stop()
    team_b.server.stop()


def test_each_inventory_holds_only_its_own_cluster_credentials(world):
    text_a = Path(world["inv_a"]).read_text()
    text_b = Path(world["inv_b"]).read_text()
    for own, other, text in ((world["a"], world["b"], text_a), (world["b"], world["a"], text_b)):
        assert str(Path(own.kubeconfig).resolve()) in text
        assert str(Path(other.kubeconfig).resolve()) not in text and str(other.kubeconfig) not in text
        assert other.server not in text
    hosts_a = yaml.safe_load(text_a)["all"]["children"]["meshfed_clusters"]["hosts"]
    assert set(hosts_a["cluster-b"]) == {"meshfed_metadata_url", "meshfed_metadata_signer_key", "meshfed_metadata_ca"}


def test_runs_succeed_and_publish_signed_metadata(world):
    for name, run in world["runs"].items():
        assert run.rc == 0, (name, run)
    public = json.loads((world["team_a"].published / "public/public.json").read_text())
    assert public["clusterUUID"] == world["team_a"].uuid
    assert public["rootCA"].strip() == kubeapi.root_pem(world["a"]).strip()
    assert (world["team_a"].published / "private/federation.json.sig").exists()
    # the private key never appears in any output or published file
    body = "".join(world["team_a"].key_file.read_text().strip().splitlines()[1:-1])
    for run in world["runs"].values():
        assert body not in run.output
    for path in world["team_a"].published.rglob("*"):
        if path.is_file():
            assert body not in path.read_text()


def test_both_directions_federated(world):
    a, b = world["a"], world["b"]
    se = kubeapi.se_by_host(a)[BAR]
    assert se["spec"]["endpoints"][0]["address"] == kubeapi.gateway_ip(b)
    assert {p["name"]: (p["number"], p["protocol"]) for p in se["spec"]["ports"]} == {
        "http": (8080, "HTTP"), "grpc-api": (9090, "GRPC")}
    assert kubeapi.se_by_host(b)[FOO]["spec"]["endpoints"][0]["address"] == kubeapi.gateway_ip(a)
    assert kubeapi.trusted(a) == {kubeapi.root_pem(b).strip(): ["cluster-b.local"]}
    assert kubeapi.trusted(b) == {kubeapi.root_pem(a).strip(): ["cluster-a.local"]}
    assert kubeapi.gateways(a)["meshfed-export"]["spec"]["servers"][0]["hosts"] == [FOO]
    assert kubeapi.gateways(b)["meshfed-export"]["spec"]["servers"][0]["hosts"] == [BAR]


def test_traffic_flows_both_ways_between_the_two_teams_clusters(world):
    """Istio's own config generation (meshsim) on both live clusters: a's sidecar reaches bar in b over
    mTLS through b's gateway, and b's reaches foo in a, after two runs that each held one kubeconfig."""
    a, b = world["a"], world["b"]
    assert_traffic([a, b], "cluster-a", "cluster-b", BAR, 8080)
    assert_traffic([a, b], "cluster-b", "cluster-a", FOO, 80)


def test_istiofederation_records_coordinates_and_verified_metadata(world):
    fed = kubeapi.federations(world["a"])["cluster-b"]
    assert fed["spec"]["metadataEndpoint"] == world["team_b"].server.url + "/"
    assert fed["spec"]["metadata"]["protocol"] == "meshfed"
    assert fed["spec"]["metadata"]["signerKeySHA256"] == world["team_b"].signer
    public = fed["status"]["metadataCache"]["public"]
    assert public["clusterUUID"] == world["team_b"].uuid
    assert public["signer"] == world["team_b"].signer
    assert public["expiresAt"]
    conditions = {c["type"]: c for c in fed["status"].get("conditions") or []}
    assert conditions["MetadataVerified"]["status"] == "True"


def test_metadata_peer_is_never_applied_to(world):
    run = world["runs"]["a1"]

    def ran(action, host):
        return [r for r in run.results(action, host=host) if r["status"] != "skipped"]
    assert not ran("federation", "cluster-b")
    assert not ran("cluster_facts", "cluster-b")
    assert not ran("federation_metadata", "cluster-b")
    assert [r["status"] for r in ran("peer_metadata", "cluster-b")] == ["ok"]
    assert [r["status"] for r in ran("federation", "cluster-a")] == ["ok"]


def test_second_runs_change_nothing(world):
    for key in ("inv_a", "inv_b"):
        run = run_playbook(world[key])
        assert run.rc == 0, run
        assert all(v["changed"] == 0 for v in run.recap.values()), run


# -- refusals ------------------------------------------------------------------------------------
def _snapshot(cluster):
    fed = kubeapi.federations(cluster).get("cluster-b") or {}
    return {"se": kubeapi.se_by_host(cluster), "dr": kubeapi.destination_rules(cluster), "trusted": kubeapi.trusted(cluster),
            "cache": (fed.get("status") or {}).get("metadataCache"), "spec": fed.get("spec")}


def _assert_nothing_removed(before, after):
    assert set(after["se"]) == set(before["se"])
    for host, se in before["se"].items():
        assert after["se"][host]["spec"] == se["spec"]
    assert set(after["dr"]) == set(before["dr"])
    assert after["trusted"] == before["trusted"]
    assert after["cache"] == before["cache"]


def _refused_run(world, tmp_name, mutate=None, server_tls=None, expect=(), args=()):
    """Serve a modified copy of cluster-b's published metadata, run team A against it, check the refusal;
    returns the peer's failed result and the run."""
    a = world["a"]
    copy = world["root"] / tmp_name
    shutil.copytree(world["team_b"].published, copy)
    if mutate:
        mutate(copy)
    before = _snapshot(a)
    with servers.StaticMetadataServer(copy, *(server_tls or world["team_b"].tls)) as srv:
        inv = world["team_a"].inventory(world["team_b"], name=tmp_name + ".yml",
                                        peer=world["team_b"].as_peer(srv.url + "/"))
        run = run_playbook(inv, *args)
    assert run.rc != 0, run
    assert run.failed("cluster-b") == 1, run
    assert run.failed("cluster-a") == 0, run
    (result,) = [r for r in run.results("peer_metadata", host="cluster-b") if r["status"] == "failed"]
    msg = result["msg"]
    assert msg.startswith("cluster-b: "), msg
    for text in expect:
        assert text in msg, msg
    _assert_nothing_removed(before, _snapshot(a))
    fed = kubeapi.federations(a)["cluster-b"]
    conditions = {c["type"]: c for c in fed["status"].get("conditions") or []}
    assert conditions["MetadataVerified"]["status"] == "False"
    assert conditions["MetadataVerified"]["message"] == msg
    return result, run


def _flip(path, needle, offset=0):
    data = path.read_bytes()
    at = data.index(needle.encode()) + offset
    path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])


def test_one_byte_of_the_service_list_changed_is_refused(world):
    result, _run = _refused_run(world, "tamper-services",
                                lambda d: _flip(d / "private/federation.json", '"port": 8080', 8),
                                expect=("private/federation.json does not match its signature",))
    assert result["reason"] == "signature"


def test_one_byte_of_the_root_changed_is_refused(world):
    result, _run = _refused_run(world, "tamper-root", lambda d: _flip(d / "public/public.json", "MII", 10),
                                expect=("public/public.json does not match its signature",))
    assert result["reason"] == "signature"


def test_unknown_signer_is_refused(world):
    def resign(d):
        other = load_private_key(generate_private_key_pem(), "attacker")
        existing = dict((rel, (d / rel).read_bytes()) for rel in ALL_PATHS)
        card = _card_of(world["b"], world["team_b"])
        files, _changed = plan_publication(card, world["team_b"].uuid, other, existing)
        for rel, body in files.items():
            (d / rel).write_bytes(body)
    result, _run = _refused_run(world, "unknown-signer", resign, expect=("unknown key", world["team_b"].signer))
    assert result["reason"] == "unknown_signer"


def test_expired_metadata_is_refused(world):
    def expire(d):
        card = _card_of(world["b"], world["team_b"])
        past = utcnow() - datetime.timedelta(days=3)
        files, _changed = plan_publication(card, world["team_b"].uuid, world["team_b"].key, {}, now=past,
                                           validity=24 * 3600)
        for rel, body in files.items():
            (d / rel).write_bytes(body)
    result, _run = _refused_run(world, "expired", expire, expect=("expired at",))
    assert result["reason"] == "expired"


def test_https_with_a_wrong_certificate_is_refused(world):
    _ca, cert_pem, key_pem = servers.serving_pki("impostor")
    result, _run = _refused_run(world, "wrong-cert", server_tls=(cert_pem, key_pem),
                                expect=("TLS certificate of https://127.0.0.1:",))
    assert result["reason"] == "tls"


def test_a_replayed_older_copy_fails_the_peers_task_and_the_next_good_copy_clears_it(world):
    """An older, validly signed copy served after a newer one was accepted (a replay) fails
    cluster-b's task naming it and the reason; everything is kept; summary and report say so under their
    own heading; serving the current copy again clears it."""
    a, team_b = world["a"], world["team_b"]
    accepted = kubeapi.federations(a)["cluster-b"]["status"]["metadataCache"]["public"]["issuedAt"]

    def replay(d):
        older = parse_time(accepted, "issuedAt") - datetime.timedelta(hours=1)
        files, _changed = plan_publication(_card_of(world["b"], team_b), team_b.uuid, team_b.key, {}, now=older,
                                           validity=7 * 24 * 3600)
        for rel, body in files.items():
            (d / rel).write_bytes(body)
    report = world["root"] / "replay-report.md"
    result, run = _refused_run(world, "replayed", replay, args=("-e", "meshfed_report_path=%s" % report),
                               expect=("before the last metadata accepted (%s)" % accepted, "replayed; refused"))
    assert result["reason"] == "rollback"
    fed = kubeapi.federations(a)["cluster-b"]
    (cond,) = [c for c in fed["status"]["conditions"] if c["type"] == "MetadataVerified"]
    assert cond["reason"] == "Rollback"
    assert fed["status"]["metadataCache"]["public"]["issuedAt"] == accepted  # the newer copy stays the one held
    heading = "Metadata refused (peer kept as unreachable, nothing removed): cluster-b (replayed: older than the copy " \
              "last accepted)"
    assert heading in run.stdout, run
    section = report.read_text().split("## Refused peer metadata\n", 1)[1].split("\n## ", 1)[0]
    assert "| cluster-b | rollback (replayed: older than the copy last accepted) | %s |" % result["msg"] in section

    good_report = world["root"] / "good-report.md"
    good = run_playbook(world["inv_a"], "-e", "meshfed_report_path=%s" % good_report)
    assert good.rc == 0 and good.failed("cluster-b") == 0, good
    (cond,) = [c for c in kubeapi.federations(a)["cluster-b"]["status"]["conditions"] if c["type"] == "MetadataVerified"]
    assert cond["status"] == "True" and cond["reason"] == "Verified"
    assert "Metadata refused" not in good.stdout and "Refused peer metadata" not in good_report.read_text()
    assert "cluster-a: cluster-b (in this run)" in good.stdout, good


def test_a_cluster_that_only_publishes_routes_what_it_publishes(lab_clusters, tmp_path):
    """The first step of the sovereign walkthrough (the inventory lists only our cluster, which
    publishes): the export Gateway passes exactly the hosts private/federation.json advertises."""
    (c,) = lab_clusters(["cluster-a"])
    team = Team(tmp_path, c)
    try:
        run = run_playbook(_inventory(tmp_path / "alone.yml", {c.name: team.own_host()}))
    finally:
        team.server.stop()
    assert run.rc == 0 and run.failed("cluster-a") == 0, run
    private = json.loads((team.published / "private/federation.json").read_text())
    published = sorted(s["hostname"] for s in private["publicServices"])
    assert published == [FOO]
    (server,) = kubeapi.gateways(c)["meshfed-export"]["spec"]["servers"]
    assert server["tls"] == {"mode": "AUTO_PASSTHROUGH"} and server["port"]["number"] == 15443
    assert server["hosts"] == published
    assert kubeapi.federations(c) == {}  # no peer: nothing imported, nothing trusted
    assert not kubeapi.trusted(c)


def _card_of(cluster, team):
    """cluster-b's card as published (read back from its signed public/private documents)."""
    return fetch_peer(PeerSpec(cluster.name, str(team.published), signer_key=team.signer))


# -- Deckhouse-protocol peer ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def deckhouse(world):
    ca_key = pki.rsa_key()
    root = pki.self_signed_ca(pki.name("Deckhouse root", "d8"), ca_key)
    root_pem = pki.cert_pem(root).decode()
    _key, _priv, d8_pub = servers.deckhouse_keypair()
    public_a = json.loads((world["team_a"].published / "public/public.json").read_text())
    remote = {public_a["clusterUUID"]: {k: public_a[k] for k in ("clusterUUID", "authnKeyPub", "rootCA")}}
    public = {"clusterUUID": D8_UUID, "authnKeyPub": d8_pub, "rootCA": root_pem}
    private = {"ingressGateways": [{"address": "192.0.2.60", "port": 15443}],
               "publicServices": [{"hostname": ECHO, "ports": [{"name": "http", "port": 80},
                                                               {"name": "grpc-echo", "port": 9090}]}]}
    ca_pem, cert_pem, key_pem = servers.serving_pki("d8-exporter")
    srv = servers.DeckhousePeerServer(public, private, remote, cert_pem, key_pem)
    d8_host = {"meshfed_metadata_url": srv.endpoint, "meshfed_metadata_protocol": "deckhouse",
               "meshfed_metadata_root_sha256": [pki.fingerprint(root)], "meshfed_metadata_ca": ca_pem,
               "meshfed_trust_domain": "d8.example"}
    inv = world["team_a"].inventory(world["team_b"], name="with-d8.yml", extra_hosts={"d8": d8_host})
    run = run_playbook(inv)
    yield {"server": srv, "run": run, "root_pem": root_pem, "ca_pem": ca_pem, "inventory": inv}
    srv.stop()


def test_deckhouse_peer_services_imported_and_root_trusted(world, deckhouse):
    assert deckhouse["run"].rc == 0, deckhouse["run"]
    a = world["a"]
    se = kubeapi.se_by_host(a)[ECHO]
    assert se["spec"]["endpoints"][0]["address"] == "192.0.2.60"
    assert {p["name"]: (p["number"], p["protocol"]) for p in se["spec"]["ports"]} == {
        "http": (80, "HTTP"), "grpc-echo": (9090, "GRPC")}
    assert kubeapi.trusted(a)[deckhouse["root_pem"].strip()] == ["d8.example"]
    assert BAR in kubeapi.se_by_host(a)     # the other peer is untouched
    fed = kubeapi.federations(a)["d8"]
    assert fed["spec"]["metadataEndpoint"] == deckhouse["server"].endpoint
    assert fed["spec"]["metadata"]["protocol"] == "deckhouse"


def test_the_jwt_we_send_passes_the_exporters_check(world, deckhouse):
    private = [e for e in deckhouse["server"].log if e["path"] == "/metadata/private/federation.json"]
    assert private, deckhouse["server"].log
    assert all(e["authn_error"] is None for e in private)
    claims = servers.jwt_claims(private[-1]["authorization"][len("Bearer "):])
    assert claims["iss"] == "d8-istio"
    assert claims["sub"] == world["team_a"].uuid
    assert claims["aud"] == D8_UUID
    assert claims["scope"] == "private-federation"
    assert claims["exp"] - claims["nbf"] == 60
    assert abs(claims["nbf"] - time.time()) < 600


def _get_private(deckhouse, token):
    ctx = ssl.create_default_context(cadata=deckhouse["ca_pem"])
    req = urllib.request.Request(deckhouse["server"].endpoint + "private/federation.json",
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_exporter_refuses_a_wrong_aud_or_an_expired_token(world, deckhouse):
    key = world["team_a"].key
    me = world["team_a"].uuid
    assert _get_private(deckhouse, make_jwt(key, me, D8_UUID))[0] == 200
    code, body = _get_private(deckhouse, make_jwt(key, me, "some-other-cluster"))
    assert code == 401 and "JWT is signed for wrong destination cluster" in body
    code, body = _get_private(deckhouse, make_jwt(key, me, D8_UUID, now=time.time() - 3600))
    assert code == 401 and "JWT token expired" in body
    forged = make_jwt(load_private_key(generate_private_key_pem(), "x"), me, D8_UUID)
    code, body = _get_private(deckhouse, forged)
    assert code == 401 and "cannot verify JWT token with known public key" in body
