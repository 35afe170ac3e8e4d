"""The IstioFederation record, and its fields for metadata peers (module_utils/plan/federations.py)."""

from ansible_collections.meshfed.istio.plugins.module_utils.plan import federations as sv

from ...cards import card

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


FLEET_SPEC = {"trustDomain", "clusterDomain", "ingressGateways", "rootCAFingerprints"}


def test_fleet_peer_gets_nothing_extra():
    peer = card("cluster-b")
    assert set(sv.federation_object("cluster-a", peer)["spec"]) == FLEET_SPEC
    assert set(sv.federation_status(peer)["public"]) == {"trustDomain", "rootCA"}
    assert sv.verified_condition(peer) is None


def test_metadata_peer_spec_and_status_fields_exclude_the_fetch_time():
    peer = metadata_peer()
    spec = sv.federation_object("cluster-a", peer)["spec"]
    assert dict((k, v) for k, v in spec.items() if k not in FLEET_SPEC) == {
        "metadataEndpoint": "https://meta.example/b/",
        "metadata": {"protocol": "meshfed", "signerKeySHA256": "sha256:" + "ab" * 32}}
    fields = sv.federation_status(peer)["public"]
    assert set(fields) == {"trustDomain", "rootCA", "clusterUUID", "authnKeyPub", "signer", "issuedAt", "expiresAt"}
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
    def rollback_message(issued_at, current_status):
        desired = {"objects": [], "ca_entries": [], "statuses": {"b": {"public": {"issuedAt": issued_at}}}, "preserve_peers": [],
                   "conditions": {}}
        conditions = sv.demote_replays(desired, {"b": current_status})["conditions"]
        return conditions["b"][0]["message"][len("b: "):] if "b" in conditions else None
    cached = {"metadataCache": {"public": {"issuedAt": T1}}}
    assert rollback_message(T1, cached) is None
    assert rollback_message("2026-11-26T00:00:00Z", cached) is None
    msg = rollback_message(T0, cached)
    assert msg.startswith("metadata issued at %s is older than the copy last accepted (issued %s)" % (T0, T1))
    assert rollback_message(T0, {}) is None
    assert rollback_message(None, cached) is None


def test_a_replayed_peer_is_demoted_to_unreachable_with_its_reason():
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
    assert "cluster-b" in plan(card("cluster-a"), [metadata_peer(issued=T0), card("cluster-c")])["statuses"]
    desired = plan(card("cluster-a"), [metadata_peer(issued=T0), card("cluster-c")],
                   current_statuses={"cluster-b": {"metadataCache": {"public": {"issuedAt": T1}}}, "cluster-c": {}})
    assert "cluster-b" not in desired["statuses"] and "cluster-c" in desired["statuses"]
    assert desired["preserve_peers"] == ["cluster-b"]
    assert not [o for o in desired["objects"] if o["metadata"]["labels"].get("federation.meshfed.io/peer") == "cluster-b"]
    assert [o["kind"] for o in desired["objects"] if o["metadata"]["labels"].get("federation.meshfed.io/peer")
            == "cluster-c"] == ["IstioFederation", "ServiceEntry", "DestinationRule"]
    assert [e["peer"] for e in desired["ca_entries"]] == ["cluster-c"]
    (cond,) = desired["conditions"]["cluster-b"]
    assert cond["status"] == "False" and cond["reason"] == "Rollback"
    assert cond["message"].startswith("cluster-b: metadata issued at %s" % T0)


# -- through the planner and the reconciler (fake API) ----------------------------------------------
def _existing(desired, name, status):
    from .test_reconcile import as_existing
    fed = next(o for o in desired["objects"] if o["kind"] == "IstioFederation" and o["metadata"]["name"] == name)
    return dict(as_existing(fed), status=status)


def _status_writes(client):
    return [r[2]["body"]["status"] for r in client.requests if r[0] == "apply" and r[1].endswith("/status")]


def test_metadata_peer_status_records_identity_and_condition_once():
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
    from ...fakes import cluster_state
    from .test_reconcile import converge
    desired = plan(card("cluster-a", services=[]), [metadata_peer()])
    fed = next(o for o in desired["objects"] if o["kind"] == "IstioFederation")
    assert fed["spec"]["metadataEndpoint"] == "https://meta.example/b/"
    client = cluster_state()
    converge(client, desired)
    (status,) = _status_writes(client)
    assert status["metadataCache"]["public"]["signer"] == "sha256:" + "ab" * 32
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("MetadataVerified", "True")]
    # rerun against what was written: nothing to do
    again = plan(card("cluster-a", services=[]), [metadata_peer()])
    client = cluster_state([_existing(again, "cluster-b", status)])
    rec = converge(client, again)
    assert _status_writes(client) == []
    assert not [r for r in client.requests if r[0] == "apply" and "istiofederations" in r[1]], rec.summary


def test_refused_peer_gets_a_false_condition_and_keeps_its_cache():
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
    from ...fakes import cluster_state
    from .test_reconcile import converge
    first = plan(card("cluster-a", services=[]), [metadata_peer()])
    cache = dict(first["statuses"]["cluster-b"], lastChangeTimestamp=T0)
    good = [dict(sv.verified_condition(metadata_peer()), lastTransitionTime=T0)]
    existing = _existing(first, "cluster-b", {"metadataCache": cache, "conditions": good})
    message = "cluster-b: private/federation.json does not match its signature (tampered, or signed by another key)"
    desired = plan(card("cluster-a", services=[]), [], unreachable=["cluster-b"],
                   refused={"cluster-b": {"reason": "signature", "message": message}})
    client = cluster_state([existing])
    rec = converge(client, desired)
    (status,) = _status_writes(client)
    assert status["metadataCache"] == cache
    (cond,) = status["conditions"]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "BadSignature", message)
    assert "IstioFederation cluster-b" in rec.summary["kept_unreachable"]
    assert not [r for r in client.requests if r[0] == "delete"]


def test_replayed_metadata_is_refused_against_the_cached_copy():
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
    from ...fakes import cluster_state
    from .test_reconcile import converge
    newer = plan(card("cluster-a", services=[]), [metadata_peer(issued=T1)])
    existing = _existing(newer, "cluster-b", {"metadataCache": dict(newer["statuses"]["cluster-b"])})
    replayed = plan(card("cluster-a", services=[]), [metadata_peer(issued=T0)],
                    current_statuses={"cluster-b": existing["status"]})
    client = cluster_state([existing])
    converge(client, replayed)
    (status,) = _status_writes(client)
    assert status["conditions"][0]["reason"] == "Rollback"
    assert status["metadataCache"]["public"]["issuedAt"] == T1
    assert not [r for r in client.requests if r[0] in ("delete",) or (r[0] == "apply" and "serviceentries" in r[1])]
