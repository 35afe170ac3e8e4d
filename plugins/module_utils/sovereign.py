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

CONDITION = "MetadataVerified"

_REASONS = {
    "fetch": "FetchFailed",
    "tls": "TLSVerificationFailed",
    "malformed": "Malformed",
    "signature": "BadSignature",
    "unknown_signer": "UnknownSigner",
    "untrusted_root": "UntrustedRoot",
    "expired": "Expired",
    "not_yet_valid": "NotYetValid",
    "rollback": "Rollback",
    "config": "InvalidCoordinates",
    "unauthorized": "Unauthorized",
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
    endpoint = coords.pop("metadataEndpoint")
    return {"metadataEndpoint": endpoint, "metadata": coords}


def public_status_fields(peer):
    """Extra ``status.metadataCache.public`` fields for a metadata peer (stable until the peer republishes)."""
    meta = metadata_of(peer)
    if not meta:
        return {}
    public = meta.get("public") or {}
    fields = {
        "clusterUUID": meta.get("clusterUUID"),
        "authnKeyPub": public.get("authnKeyPub"),
        "signer": meta.get("signer"),
        "issuedAt": meta.get("issuedAt"),
        "expiresAt": meta.get("expiresAt"),
    }
    return dict((k, v) for k, v in fields.items() if v)


def verified_condition(peer):
    meta = metadata_of(peer)
    if not meta:
        return None
    if meta.get("protocol") == "deckhouse":
        message = "Deckhouse metadata fetched over verified TLS; roots pinned"
    else:
        message = "signed by %s%s" % (meta.get("signer"), ", valid until %s" % meta["expiresAt"]
                                       if meta.get("expiresAt") else "")
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
        cond = dict(cond)
        cond["lastTransitionTime"] = (old.get("lastTransitionTime") if old.get("status") == cond["status"]
                                      and old.get("lastTransitionTime") else now)
        result.append(cond)
    return result


def same_conditions(current, desired):
    """True when ``current`` already says what ``desired`` says (ignoring transition times)."""
    def strip(conds):
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                      for c in conds or [] if isinstance(c, dict))
    return strip(current) == strip(desired)


def rollback_message(peer, current_status):
    """A message when ``peer``'s metadata was issued before the copy last accepted (a replay), else None."""
    meta = metadata_of(peer)
    if not meta or not meta.get("issuedAt"):
        return None
    cache = (current_status or {}).get("metadataCache") or {}
    last = (cache.get("public") or {}).get("issuedAt")
    # same fixed-width UTC format (YYYY-MM-DDTHH:MM:SSZ): string order is time order
    if last and meta["issuedAt"] < last:
        return ("%s: metadata issued at %s is older than the copy last accepted (issued %s): an older copy is "
                "being replayed; refused" % (peer.get("name"), meta["issuedAt"], last))
    return None
