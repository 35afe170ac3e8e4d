# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""The labels and annotations the collection writes, its object builder, and ``KINDS``, the one table of the
kinds it manages (reconcile lists, applies and prunes every row; tests/unit/test_kinds.py checks meta/rbac/)."""

import hashlib
import json
from collections import namedtuple

from ansible_collections.meshfed.istio.plugins.module_utils.common.apipaths import api_path

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "meshfed.istio"
PEER_LABEL = "federation.meshfed.io/peer"
CLUSTER_LABEL = "federation.meshfed.io/cluster"
ROLE_LABEL = "federation.meshfed.io/role"
HASH_ANNOTATION = "federation.meshfed.io/config-hash"
MANAGED_CA_ANNOTATION = "federation.meshfed.io/managed-ca-certificates"
EXPORT_GATEWAY_NAME = "meshfed-export"

# version None: the module's istio_api_version; prune_order: lower is deleted first.
Kind = namedtuple("Kind", "name group version plural namespaced prune_order verbs status_verbs install")
_WRITE = ("list", "create", "patch", "delete")
_ISTIO_CRDS = "Istio's CRDs, or set istio_api_version"
KINDS = (
    Kind("IstioFederation", "meshfed.io", "v1alpha1", "istiofederations", False, 3, _WRITE, ("patch",),
         "the meshfed.io CRD (meta/crds/istiofederation.yaml)"),
    Kind("DestinationRule", "networking.istio.io", None, "destinationrules", True, 2, _WRITE, (), _ISTIO_CRDS),
    Kind("ServiceEntry", "networking.istio.io", None, "serviceentries", True, 1, _WRITE, (), _ISTIO_CRDS),
    Kind("Gateway", "networking.istio.io", None, "gateways", True, 0, _WRITE, (), _ISTIO_CRDS),
)
BY_NAME = dict((k.name, k) for k in KINDS)


def object_key(obj):
    """``(kind, namespace, name)``: what names an object in a plan and on a cluster."""
    return (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])


def object_ref(obj):
    """``Kind namespace/name`` (``Kind name`` when cluster-scoped): an object as messages and summaries name it."""
    meta = obj["metadata"]
    return "%s %s%s" % (obj["kind"], meta["namespace"] + "/" if meta.get("namespace") else "", meta["name"])


def api_version(kind, istio_version):
    return "%s/%s" % (BY_NAME[kind].group, BY_NAME[kind].version or istio_version)


def kind_path(kind, namespace, istio_version, name=None, subresource=None):
    """REST path of ``kind`` objects (a cluster-scoped kind ignores ``namespace``)."""
    row = BY_NAME[kind]
    return api_path("/apis/" + api_version(kind, istio_version), row.plural, namespace if row.namespaced else None,
                    name, subresource)


def labels(local, peer=None, role="import"):
    """The labels of an object written on cluster ``local``: owner, cluster, role and (imports) the peer."""
    out = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_LABEL: local, ROLE_LABEL: role}
    if peer:
        out[PEER_LABEL] = peer
    return out


def new_object(kind, istio_version, metadata, spec):
    """An object of ``kind`` with a stable hash of what it declares (labels, spec) in an annotation."""
    payload = json.dumps({"labels": metadata.get("labels") or {}, "spec": spec}, sort_keys=True, separators=(",", ":"))
    metadata.setdefault("annotations", {})[HASH_ANNOTATION] = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
    return {"apiVersion": api_version(kind, istio_version), "kind": kind, "metadata": metadata, "spec": spec}


def deliverable(desired, existing, owned):
    """``(objects to write, conflicts)``: an object not ``owned`` holding the name is a conflict; an import whose
    ServiceEntry is blocked is not federated, so its DestinationRule (same name) is left out too (in neither list)."""
    keys = [object_key(obj) for obj in desired["objects"]]
    taken = set(key for key in keys if key in existing and not owned(existing[key]))
    blocked = set(key[1:] for key in taken if key[0] == "ServiceEntry")
    objects = [obj for obj, key in zip(desired["objects"], keys)
               if key not in taken and not (key[0] == "DestinationRule" and key[1:] in blocked)]
    return objects, [obj for obj, key in zip(desired["objects"], keys) if key in taken]
