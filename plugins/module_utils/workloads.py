# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the exporting cluster's Pods say about its public Services (pure, no I/O).

The caller LISTs Pods once per cluster (not per Service) and passes them here:

* the service accounts of each Service's pods become the server identities importers check
  (``subjectAltNames``: without it, ISTIO_MUTUAL accepts any certificate chaining to any trusted root);
* a named ``targetPort`` is resolved to the container port number (a ServiceEntry ``targetPort`` is a
  number);
* the gateway workload's pod labels tell which Gateways select it.

Pods that finished (phase Succeeded/Failed) or are being deleted are left out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def live(pods):
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            continue
        yield pod


def index(pods):
    """``{namespace: [pod, ...]}`` of the live pods."""
    by_ns = {}
    for pod in live(pods):
        by_ns.setdefault((pod.get("metadata") or {}).get("namespace"), []).append(pod)
    return by_ns


def selected(by_ns, namespace, selector):
    """Pods of ``namespace`` whose labels contain ``selector`` (an empty selector selects none, as for Services)."""
    if not selector:
        return []
    out = []
    for pod in by_ns.get(namespace) or []:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()):
            out.append(pod)
    return out


def service_accounts(pods):
    return sorted(set(((p.get("spec") or {}).get("serviceAccountName") or (p.get("spec") or {}).get("serviceAccount")
                       or "default") for p in pods))


def resolve_target_port(target_port, pods):
    """Number of a Service ``targetPort`` (int, numeric string, or a container port name), None if unknown."""
    if isinstance(target_port, int):
        return target_port
    if isinstance(target_port, str) and target_port.isdigit():
        return int(target_port)
    for pod in pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == target_port and port.get("containerPort"):
                    return int(port["containerPort"])
    return None


def labels_of(pods):
    return [dict((p.get("metadata") or {}).get("labels") or {}) for p in pods]
