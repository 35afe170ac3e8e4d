# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""The IstioFederation record of a peer (pure): ``spec`` its trust domain, gateways, roots and metadata coordinates (as Deckhouse's
``metadataEndpoint``); ``status.metadataCache`` its card as last accepted; ``status.conditions`` the last fetch's MetadataVerified."""

from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import PEER_LABEL, labels, new_object

CONDITION = "MetadataVerified"
# membership key (runners.membership) -> the peer's state as the module result and the report name it
PEER_STATES = {"gathered": "in this run", "unreachable": "unreachable", "not_in_run": "not in this run",
               "left": "leaving", "pruned_absent": "removed"}

# MetadataError.reason -> reason of the MetadataVerified condition
_REASONS = {
    "fetch": "FetchFailed", "tls": "TLSVerificationFailed", "unauthorized": "Unauthorized",
    "config": "InvalidCoordinates", "malformed": "Malformed", "signature": "BadSignature",
    "unknown_signer": "UnknownSigner", "untrusted_root": "UntrustedRoot",
    "expired": "Expired", "not_yet_valid": "NotYetValid", "rollback": "Rollback",
}


def metadata_of(peer):
    """The ``metadata`` block of a card fetched from published metadata (metadata/fetch.py), else None."""
    meta = peer.get("metadata") if isinstance(peer, dict) else None
    return meta if isinstance(meta, dict) and meta.get("coordinates") else None


def _gateways(peer):
    return [{"address": a, "port": peer["gateway"]["port"]} for a in peer["gateway"]["addresses"]]


def federation_object(local_name, peer):
    meta = metadata_of(peer)
    spec = {"trustDomain": peer["trust_domain"], "clusterDomain": peer.get("cluster_domain") or peer["trust_domain"],
            "ingressGateways": _gateways(peer), "rootCAFingerprints": sorted(r["sha256"] for r in peer["root_cas"])}
    if meta:
        coords = dict(meta["coordinates"])
        spec.update(metadataEndpoint=coords.pop("metadataEndpoint"), metadata=coords)
    return new_object("IstioFederation", None, {"name": peer["name"], "labels": labels(local_name, peer["name"])}, spec)


def federation_status(peer):
    """The status' metadata cache (timestamp added on write); for a metadata peer its identity and validity too."""
    meta = metadata_of(peer) or {}
    roots = [{"sha256": r["sha256"], "subject": r.get("subject", ""), "notAfter": r.get("not_after", ""),
              "pem": r["pem"]} for r in peer["root_cas"]]
    services = [{"hostname": s["hostname"],
                 "ports": [{"name": p["name"], "port": p["number"], "protocol": p["protocol"]} for p in s["ports"]]}
                for s in peer.get("public_services") or []]
    identity = {"clusterUUID": meta.get("clusterUUID"), "authnKeyPub": (meta.get("public") or {}).get("authnKeyPub"),
                "signer": meta.get("signer"), "issuedAt": meta.get("issuedAt"), "expiresAt": meta.get("expiresAt")}
    public = dict(((k, v) for k, v in identity.items() if v), trustDomain=peer["trust_domain"], rootCA=roots)
    return {"public": public, "private": {"ingressGateways": _gateways(peer), "publicServices": services}}


def view(name, state, current, desired_status):
    """What a cluster holds of peer ``name`` (a PEER_STATES ``state``): the status planned this run, else ``current``'s cache."""
    cached = ((current or {}).get("status") or {}).get("metadataCache") or {}
    cache = desired_status or cached
    public, private = cache.get("public") or {}, cache.get("private") or {}
    return {"name": name, "state": state, "trust_domain": public.get("trustDomain", ""),
            "cached_at": cached.get("lastChangeTimestamp", ""),
            "roots": [{"sha256": r.get("sha256", ""), "subject": r.get("subject", ""),
                       "not_after": r.get("notAfter", "")} for r in public.get("rootCA") or []],
            "services": sorted(s.get("hostname", "") for s in private.get("publicServices") or [])}


def verified_condition(peer):
    meta = metadata_of(peer)
    if not meta:
        return None
    if meta.get("protocol") == "deckhouse":
        message = "Deckhouse metadata fetched over verified TLS; roots pinned"
    else:
        until = ", valid until %s" % meta["expiresAt"] if meta.get("expiresAt") else ""
        message = "signed by %s%s" % (meta.get("signer"), until)
    return {"type": CONDITION, "status": "True", "reason": "Verified", "message": message}


def refused_condition(reason, message):
    return {"type": CONDITION, "status": "False", "reason": _REASONS.get(reason or "", "Refused"),
            "message": message or "metadata refused"}


def merge_conditions(current, desired, now):
    """``desired`` conditions with ``lastTransitionTime`` kept from ``current`` when the status is the same."""
    by_type = dict((c.get("type"), c) for c in current or [] if isinstance(c, dict))
    result = []
    for cond in desired:
        old = by_type.get(cond["type"]) or {}
        kept = old.get("lastTransitionTime") if old.get("status") == cond["status"] else None
        result.append(dict(cond, lastTransitionTime=kept or now))
    return result


def same_conditions(current, desired):
    """True when ``current`` already says what ``desired`` says (ignoring transition times)."""
    def strip(conds):
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                      for c in conds or [] if isinstance(c, dict))
    return strip(current) == strip(desired)


def _issued_at(status):
    return (((status or {}).get("metadataCache") or {}).get("public") or {}).get("issuedAt")


def last_accepted(federations):
    """``{peer: issuedAt}`` of the copy each IstioFederation caches; one issued earlier is a replay (``not_before``)."""
    issued = dict((name, _issued_at((obj or {}).get("status"))) for name, obj in sorted((federations or {}).items()))
    return dict((name, at) for name, at in issued.items() if at)


def demote_replays(desired, current_statuses):
    """Peers whose metadata is older than their IstioFederation's copy become unreachable (kept, condition says why)."""
    for name in sorted(desired["statuses"]):
        issued, last = desired["statuses"][name]["public"].get("issuedAt"), _issued_at(current_statuses.get(name))
        if issued and last and issued < last:  # the same fixed-width UTC format: string order is time order
            desired["objects"] = [o for o in desired["objects"] if o["metadata"]["labels"].get(PEER_LABEL) != name]
            desired["ca_entries"] = [e for e in desired["ca_entries"] if e["peer"] != name]
            del desired["statuses"][name]
            desired["preserve_peers"] = sorted(set(desired["preserve_peers"]) | {name})
            message = "%s: metadata issued at %s is older than the copy last accepted (issued %s): an older copy is being replayed; refused"
            desired["conditions"][name] = [refused_condition("rollback", message % (name, issued, last))]
    return desired
