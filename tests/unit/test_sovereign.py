"""IstioFederation fields for metadata peers (module_utils/sovereign.py)."""

from ansible_collections.meshfed.istio.plugins.module_utils import sovereign as sv

from .cards import card

T0 = "2026-11-24T00:00:00Z"
T1 = "2026-11-25T00:00:00Z"


def metadata_peer(issued=T1, protocol="meshfed"):
    peer = card("cluster-b")
    peer["metadata"] = {
        "protocol": protocol, "location": "https://meta.example/b/", "clusterUUID": "uuid-b",
        "signer": "sha256:" + "ab" * 32, "issuedAt": issued, "expiresAt": "2026-12-01T00:00:00Z",
        "fetchedAt": "2026-11-25T01:00:00Z",
        "coordinates": {"metadataEndpoint": "https://meta.example/b/", "protocol": protocol,
                        "signerKeySHA256": "sha256:" + "ab" * 32},
        "public": {"clusterUUID": "uuid-b", "authnKeyPub": "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n",
                   "rootCA": "pem"},
    }
    return peer


def test_fleet_peer_gets_nothing_extra():
    peer = card("cluster-b")
    assert sv.spec_fields(peer) == {}
    assert sv.public_status_fields(peer) == {}
    assert sv.verified_condition(peer) is None
    assert sv.rollback_message(peer, {"metadataCache": {"public": {"issuedAt": T1}}}) is None


def test_metadata_peer_spec_and_status_fields_exclude_the_fetch_time():
    peer = metadata_peer()
    assert sv.spec_fields(peer) == {"metadataEndpoint": "https://meta.example/b/",
                                    "metadata": {"protocol": "meshfed", "signerKeySHA256": "sha256:" + "ab" * 32}}
    fields = sv.public_status_fields(peer)
    assert fields["clusterUUID"] == "uuid-b" and fields["issuedAt"] == T1 and "fetchedAt" not in fields
    assert fields["authnKeyPub"].startswith("-----BEGIN PUBLIC KEY")


def test_conditions_keep_transition_time_while_the_status_holds():
    ok = sv.verified_condition(metadata_peer())
    assert ok["status"] == "True" and ok["message"].startswith("signed by sha256:abab")
    first = sv.merge_conditions([], [ok], T0)
    assert first[0]["lastTransitionTime"] == T0
    assert sv.merge_conditions(first, [ok], T1)[0]["lastTransitionTime"] == T0
    bad = sv.refused_condition("signature", "cluster-b: private/federation.json does not match its signature")
    assert bad["reason"] == "BadSignature" and bad["status"] == "False"
    moved = sv.merge_conditions(first, [bad], T1)
    assert moved[0]["lastTransitionTime"] == T1
    assert sv.same_conditions(moved, [bad]) and not sv.same_conditions(moved, [ok])
    assert sv.refused_condition("whatever", "")["reason"] == "Refused"


def test_an_older_publication_than_the_cached_one_is_a_rollback():
    cached = {"metadataCache": {"public": {"issuedAt": T1}}}
    assert sv.rollback_message(metadata_peer(issued=T1), cached) is None
    assert sv.rollback_message(metadata_peer(issued="2026-11-26T00:00:00Z"), cached) is None
    msg = sv.rollback_message(metadata_peer(issued=T0), cached)
    assert msg.startswith("cluster-b: metadata issued at %s is older than the copy last accepted" % T0)
    assert sv.rollback_message(metadata_peer(issued=T0), {}) is None
    assert sv.rollback_message(metadata_peer(issued=None), cached) is None
