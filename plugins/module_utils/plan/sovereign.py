# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an IstioFederation records about a peer known through its published metadata (pure functions).

A card returned by ``peer_metadata`` carries ``metadata`` (see module_utils/metadata.py): the
coordinates go to ``spec`` (``metadataEndpoint`` + ``metadata``, as Deckhouse's spec records its
``metadataEndpoint``), the verified identity and validity to ``status.metadataCache.public``, and the
outcome of the last fetch to the ``MetadataVerified`` condition.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import PEER_LABEL as _PEER_LABEL

CONDITION = "MetadataVerified"

# MetadataError.reason -> reason of the MetadataVerified condition
_REASONS = {
    "fetch": "FetchFailed", "tls": "TLSVerificationFailed", "unauthorized": "Unauthorized",
    "config": "InvalidCoordinates", "malformed": "Malformed", "signature": "BadSignature",
    "unknown_signer": "UnknownSigner", "untrusted_root": "UntrustedRoot",
    "expired": "Expired", "not_yet_valid": "NotYetValid", "rollback": "Rollback",
}


def metadata_of(peer):
    """The ``metadata`` block of a card fetched from published metadata, else None (a fleet peer)."""
    meta = peer.get("metadata") if isinstance(peer, dict) else None
    return meta if isinstance(meta, dict) and meta.get("coordinates") else None


def spec_fields(peer):
    """Extra IstioFederation ``spec`` fields for a metadata peer ({} for a fleet peer)."""
    meta = metadata_of(peer)
    if not meta:
        return {}
    coords = dict(meta["coordinates"])
    return {"metadataEndpoint": coords.pop("metadataEndpoint"), "metadata": coords}


def public_status_fields(peer):
    """Extra ``status.metadataCache.public`` fields for a metadata peer (stable until the peer republishes)."""
    meta = metadata_of(peer)
    if not meta:
        return {}
    fields = {"clusterUUID": meta.get("clusterUUID"), "authnKeyPub": (meta.get("public") or {}).get("authnKeyPub"),
              "signer": meta.get("signer"), "issuedAt": meta.get("issuedAt"), "expiresAt": meta.get("expiresAt")}
    return dict((k, v) for k, v in fields.items() if v)


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


def last_accepted(federations):
    """``{peer: issuedAt}`` of the metadata each IstioFederation (``{peer: object}``) caches: the copy last
    accepted. A copy issued earlier is a replay (``peer_metadata``'s ``not_before``)."""
    out = {}
    for name, obj in sorted((federations or {}).items()):
        issued = ((((obj or {}).get("status") or {}).get("metadataCache") or {}).get("public") or {}).get("issuedAt")
        if issued:
            out[name] = issued
    return out


def rollback_message(name, issued_at, current_status):
    """A message when metadata issued at ``issued_at`` predates the copy ``current_status`` caches (a replay)."""
    last = ((((current_status or {}).get("metadataCache") or {}).get("public") or {}).get("issuedAt"))
    # same fixed-width UTC format (YYYY-MM-DDTHH:MM:SSZ): string order is time order
    if issued_at and last and issued_at < last:
        return ("metadata issued at %s is older than the copy last accepted (issued %s): an older copy is being "
                "replayed; refused" % (issued_at, last))
    return None


def refused_conditions(refused, unreachable):
    """``{peer: [condition]}`` for unreachable peers whose metadata was refused (``{peer: {reason, message}}``)."""
    return dict((name, [refused_condition((info or {}).get("reason"), (info or {}).get("message"))])
                for name, info in (refused or {}).items() if name in unreachable)


def demote_replays(desired, current_statuses):
    """Treat peers whose metadata is older than the copy their IstioFederation holds as unreachable.

    ``current_statuses``: ``{peer: status}`` of the existing IstioFederations. Their planned objects,
    status and roots are dropped (what the cluster holds is kept), and their condition says why.
    """
    for name in sorted(desired["statuses"]):
        issued_at = desired["statuses"][name]["public"].get("issuedAt")
        message = rollback_message(name, issued_at, current_statuses.get(name))
        if not message:
            continue
        desired["objects"] = [o for o in desired["objects"] if o["metadata"]["labels"].get(_PEER_LABEL) != name]
        desired["ca_entries"] = [e for e in desired["ca_entries"] if e["peer"] != name]
        del desired["statuses"][name]
        desired["preserve_peers"] = sorted(set(desired["preserve_peers"]) | set([name]))
        desired["conditions"][name] = [refused_condition("rollback", "%s: %s" % (name, message))]
    return desired
