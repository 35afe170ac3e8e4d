# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""What the exporting cluster's live Pods (one LIST per cluster) say about its Services (pure, no I/O): the
service accounts importers check (``subjectAltNames``; without it ISTIO_MUTUAL accepts any certificate of any
trusted root), a named ``targetPort``'s number, the gateway pods' labels (which Gateways select them)."""


def index(pods):
    """``{namespace: [pod, ...]}`` of the live pods (not finished, not being deleted)."""
    by_ns = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not meta.get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            by_ns.setdefault(meta.get("namespace"), []).append(pod)
    return by_ns


def matches(selector, labels):
    """Whether ``labels`` contain every key and value of ``selector``."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def selected(by_ns, namespace, selector):
    """Pods of ``namespace`` whose labels contain ``selector`` (an empty selector selects none, as for Services)."""
    pods = (by_ns.get(namespace) or []) if selector else []
    return [pod for pod, labels in zip(pods, labels_of(pods)) if matches(selector, labels)]


def service_accounts(pods):
    specs = [p.get("spec") or {} for p in pods]
    return sorted(set(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default" for spec in specs))


def resolve_target_port(target_port, pods):
    """Number of a Service ``targetPort`` (int, numeric string, or a container port name), None if unknown."""
    if isinstance(target_port, int) or (isinstance(target_port, str) and target_port.isdigit()):
        return int(target_port)
    ports = (port for pod in pods for container in (pod.get("spec") or {}).get("containers") or []
             for port in container.get("ports") or [])
    return next((int(p["containerPort"]) for p in ports if p.get("name") == target_port and p.get("containerPort")),
                None)


def labels_of(pods):
    return [dict((p.get("metadata") or {}).get("labels") or {}) for p in pods]
