"""Federation metadata: publish, sign, verify, fetch, Deckhouse JWT (module_utils/metadata/, pki/jose.py)."""

import datetime
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MetadataError
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import iso
from ansible_collections.meshfed.istio.plugins.module_utils.metadata.fetch import PeerSpec, fetch_peer
from ansible_collections.meshfed.istio.plugins.module_utils.metadata.publish import (
    ALL_PATHS, DEFAULT_VALIDITY, plan_publication)
from ansible_collections.meshfed.istio.plugins.module_utils.pki.jose import (
    generate_private_key_pem, key_fingerprint, load_private_key, load_public_key, make_jwt,
    public_key_pem)
from tests.lab import metadata_server as servers

from ...cards import card
from ...conftest import NOW, make_cert

LATER = NOW + datetime.timedelta(hours=1)
UUID_A = "0d5c2a8e-1f6b-4c1e-9a57-5f0e6b0f7a01"


def with_accounts(c):
    c["public_services"][0]["service_accounts"] = ["svc-a", "web-sa"]
    return c


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


def publish(tmp_path, the_card, key, now=NOW, validity=DEFAULT_VALIDITY, existing=None):
    files, changed = plan_publication(the_card, UUID_A, key, existing or {}, now=now, validity=validity)
    for rel, body in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return files, changed


def read_all(tmp_path):
    return dict((rel, (tmp_path / rel).read_bytes()) for rel in ALL_PATHS)


def spec(tmp_path, name="cluster-a", **kw):
    return PeerSpec(name, str(tmp_path), **kw)


def fetch(tmp_path, key, now=LATER, **kw):
    pin = kw.pop("signer_key", key_fingerprint(key.public_key()))
    return fetch_peer(spec(tmp_path, signer_key=pin, **kw), now=now)


# -- round trip ----------------------------------------------------------------------------------
def test_published_documents_have_deckhouse_fields_and_the_extension(tmp_path, key):
    the_card = with_accounts(card("cluster-a"))
    publish(tmp_path, the_card, key)
    public = json.loads((tmp_path / "public/public.json").read_text())
    private = json.loads((tmp_path / "private/federation.json").read_text())
    assert set(public) == {"clusterUUID", "authnKeyPub", "rootCA", "meshfed"}
    assert public["clusterUUID"] == UUID_A
    assert public["rootCA"] == the_card["root_cas"][0]["pem"]
    assert "BEGIN PUBLIC KEY" in public["authnKeyPub"]
    assert set(private) == {"ingressGateways", "publicServices", "meshfed"}
    assert private["ingressGateways"] == [{"address": "192.0.2.10", "port": 15443}]
    assert private["publicServices"] == [{"hostname": "svc-cluster-a.web.svc.cluster-a.local",
                                          "ports": [{"name": "http", "port": 80, "protocol": "HTTP"}]}]
    assert public["meshfed"]["trustDomain"] == "cluster-a.local"
    assert public["meshfed"]["issuedAt"] == "2026-11-24T00:00:00Z"
    assert public["meshfed"]["expiresAt"] == "2026-12-01T00:00:00Z"
    assert private["meshfed"]["services"]["svc-cluster-a.web.svc.cluster-a.local"]["serviceAccounts"] == \
        ["svc-a", "web-sa"]


def test_fetched_peer_is_the_same_card_the_planner_consumes(tmp_path, key):
    the_card = with_accounts(card("cluster-a"))
    publish(tmp_path, the_card, key)
    got = fetch(tmp_path, key)
    for field in ("name", "trust_domain", "cluster_domain", "public_services"):
        assert got[field] == the_card[field], field
    assert [r["sha256"] for r in got["root_cas"]] == [the_card["root_cas"][0]["sha256"]]
    assert got["gateway"]["addresses"] == ["192.0.2.10"]
    assert got["gateway"]["resolution"] == "STATIC"
    assert got["gateway"]["port"] == 15443
    assert got["metadata"]["clusterUUID"] == UUID_A
    assert got["metadata"]["signer"] == key_fingerprint(key.public_key())
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import validate_card
    assert validate_card(got) == []


def test_several_roots_during_rotation_are_all_published_and_imported(tmp_path, key):
    the_card = card("cluster-a")
    second = make_cert("Root cluster-a next")[2]
    from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
    the_card["root_cas"].append({"pem": second, "sha256": pem_sha256(second), "subject": "x", "not_after": "y"})
    publish(tmp_path, the_card, key)
    got = fetch(tmp_path, key)
    assert [r["sha256"] for r in got["root_cas"]] == [r["sha256"] for r in the_card["root_cas"]]


def test_republish_of_unchanged_content_keeps_the_files(tmp_path, key):
    files, changed = publish(tmp_path, card("cluster-a"), key)
    assert changed
    again, changed = plan_publication(card("cluster-a"), UUID_A, key, read_all(tmp_path), now=LATER)
    assert not changed
    assert again == files


def test_republish_after_a_change_or_near_expiry_rewrites(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key)
    changed_card = card("cluster-a", services=[("web", "other", [("http", 80, "HTTP")])])
    _files, changed = plan_publication(changed_card, UUID_A, key, read_all(tmp_path), now=LATER)
    assert changed
    near_end = NOW + datetime.timedelta(days=6)
    files, changed = plan_publication(card("cluster-a"), UUID_A, key, read_all(tmp_path), now=near_end)
    assert changed
    assert json.loads(files["public/public.json"])["meshfed"]["issuedAt"] == iso(near_end)


def test_republish_with_another_key_rewrites(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key)
    _files, changed = plan_publication(card("cluster-a"), UUID_A, Ed25519PrivateKey.generate(),
                                       read_all(tmp_path), now=LATER)
    assert changed


# -- refusals ------------------------------------------------------------------------------------
def flip_byte(path, needle, offset=0):
    data = path.read_bytes()
    at = data.index(needle.encode()) + offset
    path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])


@pytest.mark.parametrize("rel, needle, offset", [
    ("private/federation.json", "svc-cluster-a", 0),      # a service name
    ("private/federation.json", '"port": 80', 8),         # a service port: 80 -> 90
    ("private/federation.json", '"protocol": "HTTP"', 13),  # a protocol
    ("private/federation.json", "192.0.2.10", 9),         # the gateway address
    ("private/federation.json", "{", 0),                 # breaks the JSON itself
    ("public/public.json", "MII", 0),                     # the root certificate's first byte
    ("public/public.json", "MII", 4),                     # the root certificate
    ("public/public.json", "cluster-a.local", 0),         # the trust domain
])
def test_one_changed_byte_is_refused_as_tampering(tmp_path, key, rel, needle, offset):
    publish(tmp_path, card("cluster-a"), key)
    flip_byte(tmp_path / rel, needle, offset)
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key)
    assert err.value.reason == "signature"
    assert str(err.value) == "cluster-a: %s does not match its signature (tampered, or signed by another key)" % rel


def test_documents_re_signed_by_another_key_are_an_unknown_signer(tmp_path, key):
    publish(tmp_path, card("cluster-a"), Ed25519PrivateKey.generate())   # attacker's key
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key)
    assert err.value.reason == "unknown_signer"
    assert "unknown key sha256:" in str(err.value)
    assert key_fingerprint(key.public_key()) in str(err.value)


def test_pinning_the_key_pem_itself_also_catches_a_swapped_authn_key(tmp_path, key):
    publish(tmp_path, card("cluster-a"), Ed25519PrivateKey.generate())
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key, signer_key=public_key_pem(key.public_key()))
    assert err.value.reason == "unknown_signer"


def test_expired_metadata_is_refused(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key, validity=3600)
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key, now=NOW + datetime.timedelta(hours=2))
    assert err.value.reason == "expired"
    assert "cluster-a: public/public.json expired at 2026-11-24T01:00:00Z" in str(err.value)


def test_metadata_from_the_future_is_refused(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key, now=NOW + datetime.timedelta(hours=3))
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key, now=NOW)
    assert err.value.reason == "not_yet_valid"


def test_an_older_publication_than_the_last_accepted_is_a_rollback(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key)
    with pytest.raises(MetadataError) as err:
        fetch_peer(spec(tmp_path, signer_key=key_fingerprint(key.public_key())), now=LATER,
                   not_before=NOW + datetime.timedelta(minutes=1))
    assert err.value.reason == "rollback"


def test_public_and_private_from_different_publications_are_refused(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key)
    old_private = (tmp_path / "private/federation.json").read_bytes()
    old_sig = (tmp_path / "private/federation.json.sig").read_bytes()
    publish(tmp_path, card("cluster-a", services=[("web", "new", [("http", 80, "HTTP")])]), key,
            now=NOW + datetime.timedelta(minutes=5))
    (tmp_path / "private/federation.json").write_bytes(old_private)
    (tmp_path / "private/federation.json.sig").write_bytes(old_sig)
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key)
    assert err.value.reason == "rollback"


def test_missing_signature_is_refused(tmp_path, key):
    publish(tmp_path, card("cluster-a"), key)
    (tmp_path / "private/federation.json.sig").unlink()
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path, key)
    assert err.value.reason == "signature"


def test_root_pin_accepts_pinned_and_refuses_unpinned_roots(tmp_path, key):
    the_card = card("cluster-a")
    publish(tmp_path, the_card, key)
    pin = the_card["root_cas"][0]["sha256"]
    got = fetch_peer(spec(tmp_path, root_sha256=["sha256:" + pin.upper()]), now=LATER)
    assert got["root_cas"][0]["sha256"] == pin
    with pytest.raises(MetadataError) as err:
        fetch_peer(spec(tmp_path, root_sha256=["ab" * 32]), now=LATER)
    assert err.value.reason == "untrusted_root"
    # an extra root (e.g. slipped in by whoever controls the host and re-signs) is not trusted
    extra = make_cert("Attacker root")[2]
    from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
    the_card["root_cas"].append({"pem": extra, "sha256": pem_sha256(extra), "subject": "x", "not_after": "y"})
    publish(tmp_path, the_card, Ed25519PrivateKey.generate(), now=NOW + datetime.timedelta(minutes=1))
    with pytest.raises(MetadataError) as err:
        fetch_peer(spec(tmp_path, root_sha256=[pin]), now=LATER)
    assert err.value.reason == "untrusted_root"
    assert pem_sha256(extra) in str(err.value)


def test_a_peer_without_trust_anchor_or_with_bad_pins_is_a_config_error(tmp_path):
    with pytest.raises(MetadataError) as err:
        PeerSpec("cluster-b", str(tmp_path))
    assert err.value.reason == "config" and "no trust anchor" in str(err.value)
    with pytest.raises(MetadataError) as err:
        PeerSpec("cluster-b", str(tmp_path), root_sha256=["not-a-digest"])
    assert "meshfed_metadata_root_sha256" in str(err.value)
    with pytest.raises(MetadataError) as err:
        fetch_peer(PeerSpec("cluster-b", "http://127.0.0.1/x", root_sha256=["ab" * 32]))
    assert err.value.reason == "config"
    assert str(err.value).startswith("cluster-b: metadata location http://127.0.0.1/x must be https://")


def test_unreadable_location_is_a_fetch_error(tmp_path, key):
    with pytest.raises(MetadataError) as err:
        fetch(tmp_path / "nowhere", key)
    assert err.value.reason == "fetch"
    assert "public/public.json" in str(err.value)


# -- keys ----------------------------------------------------------------------------------------
def test_private_key_loads_from_pkcs8_and_deckhouse_pem_and_errors_never_echo_it():
    _key, priv_pem, pub_pem = servers.deckhouse_keypair()
    loaded = load_private_key(priv_pem, "cluster-a")
    assert key_fingerprint(loaded.public_key()) == key_fingerprint(load_public_key(pub_pem, "x"))
    assert load_private_key(generate_private_key_pem(), "cluster-a") is not None
    broken = priv_pem.replace("MC4C", "MC5C")
    with pytest.raises(MetadataError) as err:
        load_private_key(broken, "cluster-a")
    body = "".join(broken.strip().splitlines()[1:-1])
    assert body not in str(err.value) and body[:20] not in str(err.value)
    rsa_like = make_cert("x")[1]
    from cryptography.hazmat.primitives import serialization
    ec_pem = rsa_like.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    with pytest.raises(MetadataError) as err:
        load_private_key(ec_pem, "cluster-a")
    assert "not an Ed25519 key" in str(err.value)


# -- Deckhouse JWT -------------------------------------------------------------------------------
def test_jwt_has_deckhouse_claims_and_header(key):
    token = make_jwt(key, "uuid-mine", "uuid-peer", now=1_800_000_000)
    header = json.loads(servers._b64url_decode(token.split(".", 1)[0]))
    assert header == {"alg": "EdDSA"}
    assert servers.jwt_claims(token) == {"iss": "d8-istio", "sub": "uuid-mine", "aud": "uuid-peer",
                                         "scope": "private-federation", "nbf": 1_800_000_000, "exp": 1_800_000_060}


def test_jwt_passes_the_exporter_check_and_wrong_aud_expiry_or_key_fail(key):
    remote = {"uuid-mine": {"clusterUUID": "uuid-mine", "authnKeyPub": public_key_pem(key.public_key()),
                            "rootCA": "x"}}
    now = 1_800_000_000
    good = make_jwt(key, "uuid-mine", "uuid-peer", now=now)
    assert servers.check_authn("Bearer " + good, "uuid-peer", remote, now=now + 30) is None
    assert "wrong destination" in servers.check_authn("Bearer " + make_jwt(key, "uuid-mine", "other", now=now),
                                                      "uuid-peer", remote, now=now)
    assert servers.check_authn("Bearer " + good, "uuid-peer", remote, now=now + 61) == "JWT token expired"
    forged = make_jwt(Ed25519PrivateKey.generate(), "uuid-mine", "uuid-peer", now=now)
    assert "cannot verify" in servers.check_authn("Bearer " + forged, "uuid-peer", remote, now=now)
    assert "unknown source" in servers.check_authn("Bearer " + make_jwt(key, "stranger", "uuid-peer", now=now),
                                                   "uuid-peer", remote, now=now)
    other_scope = make_jwt(key, "uuid-mine", "uuid-peer", now=now, scope="private-multicluster")
    assert "wrong scope" in servers.check_authn("Bearer " + other_scope, "uuid-peer", remote, now=now)
    assert servers.check_authn(good, "uuid-peer", remote, now=now) == "Bearer authorization required"


# -- Deckhouse peer documents --------------------------------------------------------------------
def deckhouse_dir(tmp_path, root_pem, pub_pem):
    (tmp_path / "public").mkdir()
    (tmp_path / "private").mkdir()
    (tmp_path / "public/public.json").write_text(json.dumps(
        {"clusterUUID": "d8-uuid", "authnKeyPub": pub_pem, "rootCA": root_pem}))
    (tmp_path / "private/federation.json").write_text(json.dumps({
        "ingressGateways": [{"address": "192.0.2.50", "port": 31443}],
        "publicServices": [{"hostname": "echo.apps.svc.d8.example", "ports": [{"name": "grpc-api", "port": 9090},
                                                                              {"name": "http", "port": 80}]}]}))


def test_deckhouse_documents_convert_to_a_card(tmp_path):
    root_pem = make_cert("Deckhouse root")[2]
    _key, _priv, pub_pem = servers.deckhouse_keypair()
    deckhouse_dir(tmp_path, root_pem, pub_pem)
    from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
    peer = PeerSpec("d8", str(tmp_path), protocol="deckhouse", root_sha256=[pem_sha256(root_pem)],
                    trust_domain="d8.example")
    got = fetch_peer(peer, now=LATER)
    assert got["trust_domain"] == "d8.example"
    assert got["cluster_domain"] == "d8.example"
    assert got["gateway"]["addresses"] == ["192.0.2.50"] and got["gateway"]["port"] == 31443
    assert got["public_services"] == [{
        "name": "echo", "namespace": "apps", "hostname": "echo.apps.svc.d8.example",
        "ports": [{"name": "http", "number": 80, "protocol": "HTTP"},
                  {"name": "grpc-api", "number": 9090, "protocol": "GRPC"}],
        "service_accounts": []}]
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import validate_card
    assert validate_card(got) == []
    # unsigned documents are only accepted when the inventory says the peer is a Deckhouse exporter
    with pytest.raises(MetadataError) as err:
        fetch_peer(PeerSpec("d8", str(tmp_path), root_sha256=[pem_sha256(root_pem)]), now=LATER)
    assert err.value.reason == "signature"


# -- HTTPS -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def serving():
    return servers.serving_pki()


def test_https_fetch_with_pinned_ca_and_refusal_of_a_wrong_certificate(tmp_path, key, serving):
    ca_pem, cert_pem, key_pem = serving
    publish(tmp_path, card("cluster-a"), key)
    pin = key_fingerprint(key.public_key())
    with servers.StaticMetadataServer(tmp_path, cert_pem, key_pem) as srv:
        got = fetch_peer(PeerSpec("cluster-a", srv.url + "/", signer_key=pin, ca_pem=ca_pem), now=LATER)
        assert got["public_services"][0]["hostname"] == "svc-cluster-a.web.svc.cluster-a.local"
        other_ca = servers.serving_pki()[0]
        with pytest.raises(MetadataError) as err:
            fetch_peer(PeerSpec("cluster-a", srv.url, signer_key=pin, ca_pem=other_ca), now=LATER)
        assert err.value.reason == "tls"
        assert str(err.value).startswith("cluster-a: TLS certificate of https://127.0.0.1:")
        with pytest.raises(MetadataError) as err:   # system CAs do not know the lab CA
            fetch_peer(PeerSpec("cluster-a", srv.url, signer_key=pin), now=LATER)
        assert err.value.reason == "tls"


@pytest.mark.parametrize("port", [True, 0, 65536, "15443"])
def test_deckhouse_gateway_without_a_port_number_is_refused(tmp_path, port):
    root_pem = make_cert("Deckhouse root")[2]
    deckhouse_dir(tmp_path, root_pem, servers.deckhouse_keypair()[2])
    doc = tmp_path / "private/federation.json"
    doc.write_text(json.dumps(dict(json.loads(doc.read_text()), ingressGateways=[{"address": "192.0.2.50",
                                                                                 "port": port}])))
    from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
    peer = PeerSpec("d8", str(tmp_path), protocol="deckhouse", root_sha256=[pem_sha256(root_pem)])
    with pytest.raises(MetadataError) as err:
        fetch_peer(peer, now=LATER)
    assert "ingressGateways entry" in str(err.value) and "needs an address and a port" in str(err.value)


def test_deckhouse_exporter_accepts_our_token_over_https_and_the_card_follows(serving, key):
    ca_pem, cert_pem, key_pem = serving
    root_pem = make_cert("Deckhouse root")[2]
    _d8key, _priv, d8_pub = servers.deckhouse_keypair()
    public = {"clusterUUID": "d8-uuid", "authnKeyPub": d8_pub, "rootCA": root_pem}
    private = {"ingressGateways": [{"address": "192.0.2.50", "port": 15443}],
               "publicServices": [{"hostname": "echo.apps.svc.d8.example",
                                   "ports": [{"name": "http", "port": 80, "protocol": "HTTP"}]}]}
    remote = {UUID_A: {"clusterUUID": UUID_A, "authnKeyPub": public_key_pem(key.public_key()), "rootCA": "x"}}
    from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
    with servers.DeckhousePeerServer(public, private, remote, cert_pem, key_pem) as srv:
        peer = PeerSpec("d8", srv.endpoint, protocol="deckhouse", root_sha256=[pem_sha256(root_pem)],
                        ca_pem=ca_pem, trust_domain="d8.example")
        got = fetch_peer(peer, local_uuid=UUID_A, local_key=key)
        assert [s["hostname"] for s in got["public_services"]] == ["echo.apps.svc.d8.example"]
        assert srv.log[-1]["path"] == "/metadata/private/federation.json"
        assert srv.log[-1]["authn_error"] is None
        claims = servers.jwt_claims(srv.log[-1]["authorization"][len("Bearer "):])
        assert (claims["iss"], claims["sub"], claims["aud"], claims["scope"]) == \
            ("d8-istio", UUID_A, "d8-uuid", "private-federation")
        # a cluster the exporter does not know is refused by it; the error names the peer and the reason
        with pytest.raises(MetadataError) as err:
            fetch_peer(peer, local_uuid="stranger", local_key=key)
        assert err.value.reason == "unauthorized"
        assert "d8: GET %s/metadata/private/federation.json: HTTP 401: Authentication error: JWT is signed " \
               "for unknown source cluster" % srv.url == str(err.value)
        with pytest.raises(MetadataError) as err:   # no key: we cannot authenticate at all
            fetch_peer(peer)
        assert err.value.reason == "config"
