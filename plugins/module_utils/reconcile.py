# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge one cluster onto a plan (see planner.py).

API calls per run, independent of how many peers and services there are: one LIST per kind
(IstioFederation, ServiceEntry, DestinationRule, Gateway), one LIST of Services (hostname clash
check), GET ConfigMap istio, GET Deployment istiod; then one write per object that actually
changes. Nothing is written when nothing changed, so a rerun reports ``changed=False``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML is a requirement of the collection
    yaml = None

from ansible_collections.meshfed.istio.plugins.module_utils.k8s import K8sError, core_path, group_path
from ansible_collections.meshfed.istio.plugins.module_utils.meshconfig import (
    check_multiroot,
    load_mesh,
    update_ca_certificates,
)
from ansible_collections.meshfed.istio.plugins.module_utils.planner import (
    CLUSTER_LABEL,
    FEDERATION_GROUP,
    FEDERATION_VERSION,
    HASH_ANNOTATION,
    ISTIO_GROUP,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PEER_LABEL,
)

MANAGED_CA_ANNOTATION = "federation.meshfed.io/managed-ca-certificates"
KINDS = ("IstioFederation", "DestinationRule", "ServiceEntry", "Gateway")
_PLURAL = {
    "IstioFederation": "istiofederations",
    "ServiceEntry": "serviceentries",
    "DestinationRule": "destinationrules",
    "Gateway": "gateways",
}
_CONFLICT_RETRIES = 5


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def kind_path(kind, namespace, api_version, name=None, subresource=None):
    if kind == "IstioFederation":
        return group_path(FEDERATION_GROUP, FEDERATION_VERSION, _PLURAL[kind], None, name, subresource)
    return group_path(ISTIO_GROUP, api_version, _PLURAL[kind], namespace, name, subresource)


def contains(actual, desired):
    """True when ``actual`` holds everything in ``desired`` (dicts by subset, lists exactly)."""
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return False
        return all(k in actual and contains(actual[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return False
        return all(contains(a, d) for a, d in zip(actual, desired))
    return actual == desired


def is_owned(obj, local):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(CLUSTER_LABEL) == local


def trimmed(obj):
    """An object as a user reads it in a diff: no server bookkeeping."""
    if obj is None:
        return {}
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"):
        meta.pop(key, None)
    out.pop("status", None)
    return out


def _as_text(value):
    """Objects as YAML text for --diff (line diffs read far better than JSON)."""
    if isinstance(value, dict):
        return yaml.safe_dump(value, sort_keys=True, default_flow_style=False, width=4096) if value else ""
    return value


class Reconciler(object):
    def __init__(self, client, local, namespace, api_version="v1", check_mode=False, want_diff=False):
        self.client = client
        self.local = local
        self.namespace = namespace
        self.api_version = api_version
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.summary = {"created": [], "updated": [], "pruned": [], "unchanged": 0, "kept_unreachable": [],
                        "conflicts": [], "trust": {"added": [], "removed": [], "kept": []}}
        self.diffs = []
        self.warnings = []
        self.changed = False
        self.mesh = {}

    # -- reads ------------------------------------------------------------------------------------
    def list_existing(self):
        existing = {}
        for kind in KINDS:
            ns = None if kind == "IstioFederation" else self.namespace
            try:
                items = self.client.list(kind_path(kind, ns, self.api_version),
                                         what="list %s%s" % (kind, "" if ns is None else " in " + ns))
            except K8sError as exc:
                if exc.status == 404:
                    raise K8sError("%s: the %s API (%s) is not served; install %s" % (
                        self.local, kind,
                        "%s/%s" % (FEDERATION_GROUP, FEDERATION_VERSION) if kind == "IstioFederation"
                        else "%s/%s" % (ISTIO_GROUP, self.api_version),
                        "the meshfed.io CRD (meta/crds/istiofederation.yaml)" if kind == "IstioFederation"
                        else "Istio's CRDs, or set istio_api_version"), status=404)
                raise
            for item in items:
                existing[(kind, item["metadata"].get("namespace"), item["metadata"]["name"])] = item
        return existing

    def local_hostnames(self, cluster_domain):
        hosts = set()
        for svc in self.client.list(core_path("services"), what="list Services"):
            meta = svc.get("metadata") or {}
            hosts.add("%s.%s.svc.%s" % (meta.get("name"), meta.get("namespace"), cluster_domain))
        return hosts

    # -- objects -----------------------------------------------------------------------------------
    def _ref(self, obj):
        meta = obj["metadata"]
        return "%s %s%s" % (obj["kind"], meta["namespace"] + "/" if meta.get("namespace") else "", meta["name"])

    def _record_diff(self, before, after, header):
        if self.want_diff:
            before, after = _as_text(before), _as_text(after)
            self.diffs.append({"before": before, "after": after, "before_header": header, "after_header": header})

    def converge_objects(self, plan, existing):
        # an import whose ServiceEntry name is taken by a foreign object is not federated: its
        # DestinationRule (same name) is then not wanted either, so an owned one is pruned
        blocked = set()
        for obj in plan["objects"]:
            key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if obj["kind"] == "ServiceEntry" and key in existing and not is_owned(existing[key], self.local):
                blocked.add(key[1:])
        desired_keys = set()
        for obj in plan["objects"]:
            meta = obj["metadata"]
            key = (obj["kind"], meta.get("namespace"), meta["name"])
            if obj["kind"] == "DestinationRule" and key[1:] in blocked:
                continue
            desired_keys.add(key)
            current = existing.get(key)
            ref = self._ref(obj)
            if current is not None and not is_owned(current, self.local):
                owner = ((current.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL, "nobody we know")
                self.summary["conflicts"].append(ref)
                self.warnings.append("%s: %s exists and is not managed by meshfed.istio for this cluster "
                                     "(managed-by: %s); left untouched, so it is not federated. Rename or remove it."
                                     % (self.local, ref, owner))
                continue
            path = kind_path(obj["kind"], meta.get("namespace"), self.api_version, meta["name"])
            current_hash = ((current or {}).get("metadata") or {}).get("annotations", {}).get(HASH_ANNOTATION)
            up_to_date = (current is not None and current_hash == meta["annotations"][HASH_ANNOTATION]
                          and contains(current.get("spec"), obj.get("spec"))
                          and contains((current.get("metadata") or {}).get("labels"), meta.get("labels")))
            if not up_to_date:
                self.client.apply(path, obj, dry_run=self.check_mode, what="apply " + ref)
                self.changed = True
                self.summary["created" if current is None else "updated"].append(ref)
                self._record_diff(trimmed(current), trimmed(obj), ref)
            else:
                self.summary["unchanged"] += 1
            if obj["kind"] == "IstioFederation":
                self.converge_status(obj, current, plan["statuses"][meta["name"]])
        return desired_keys

    def converge_status(self, obj, current, cache):
        before = ((current or {}).get("status") or {}).get("metadataCache") or {}
        comparable = dict((k, v) for k, v in before.items() if k != "lastChangeTimestamp")
        if current is not None and comparable == cache:
            return
        if self.check_mode and current is None:
            # nothing to dry-run against yet; the object's creation is already reported
            return
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {"name": obj["metadata"]["name"]},
            "status": {"metadataCache": dict(cache, lastChangeTimestamp=now_rfc3339())},
        }
        path = kind_path(obj["kind"], None, self.api_version, obj["metadata"]["name"], "status")
        self.client.apply(path, body, dry_run=self.check_mode, what="apply status of " + self._ref(obj))
        self.changed = True
        ref = self._ref(obj) + " status"
        if self._ref(obj) not in self.summary["created"] + self.summary["updated"]:
            self.summary["updated"].append(ref)
        self._record_diff({"metadataCache": comparable}, {"metadataCache": cache}, ref)

    def prune(self, existing, desired_keys, preserve_peers):
        # reverse dependency order: ServiceEntries before the IstioFederation that explains them
        order = {"Gateway": 0, "ServiceEntry": 1, "DestinationRule": 2, "IstioFederation": 3}
        for key in sorted(existing, key=lambda k: (order[k[0]], k[1] or "", k[2])):
            obj = existing[key]
            if key in desired_keys or not is_owned(obj, self.local):
                continue
            peer = (obj["metadata"].get("labels") or {}).get(PEER_LABEL)
            ref = self._ref(obj)
            if peer and peer in preserve_peers:
                self.summary["kept_unreachable"].append(ref)
                continue
            if not self.check_mode:
                try:
                    self.client.delete(kind_path(key[0], key[1], self.api_version, key[2]),
                                       resource_version=obj["metadata"].get("resourceVersion"), what="delete " + ref)
                except K8sError as exc:
                    if exc.status == 409:
                        self.warnings.append("%s: %s changed while pruning it; left for the next run" % (self.local, ref))
                        continue
                    raise
            self.changed = True
            self.summary["pruned"].append(ref)
            self._record_diff(trimmed(obj), {}, ref)

    # -- trust ----------------------------------------------------------------------------------------
    def converge_trust(self, plan):
        path = core_path("configmaps", self.namespace, "istio")
        for attempt in range(_CONFLICT_RETRIES):
            cm = self.client.get(path, what="get ConfigMap %s/istio" % self.namespace)
            if cm is None:
                raise K8sError("%s: ConfigMap %s/istio not found; cannot add the peers' roots" % (self.local, self.namespace))
            text = (cm.get("data") or {}).get("mesh") or ""
            annotations = (cm.get("metadata") or {}).get("annotations") or {}
            try:
                managed = json.loads(annotations.get(MANAGED_CA_ANNOTATION) or "{}")
                if not isinstance(managed, dict):
                    raise ValueError("not a mapping")
            except ValueError as exc:
                raise K8sError("%s: annotation %s on ConfigMap %s/istio is not valid JSON (%s); fix or remove it"
                               % (self.local, MANAGED_CA_ANNOTATION, self.namespace, exc))
            new_text, new_managed, changed, warnings = update_ca_certificates(
                text, self.local, plan["ca_entries"], managed, preserve_peers=plan["preserve_peers"])
            self.warnings.extend(warnings)
            self.mesh = load_mesh(new_text, self.local)
            preserved = set(plan["preserve_peers"])
            self.summary["trust"]["kept"] = sorted(
                "%s (%s)" % (fp, peers) for fp, peers in new_managed.items() if set(peers.split(",")) & preserved)
            if not changed and new_managed == managed:
                return
            added = sorted(set(new_managed) - set(managed))
            removed = sorted(set(managed) - set(new_managed))
            body = {
                "metadata": {
                    "resourceVersion": cm["metadata"]["resourceVersion"],
                    "annotations": {MANAGED_CA_ANNOTATION: json.dumps(new_managed, sort_keys=True)},
                },
                "data": {"mesh": new_text},
            }
            try:
                self.client.merge_patch(path, body, dry_run=self.check_mode,
                                        what="patch ConfigMap %s/istio" % self.namespace)
            except K8sError as exc:
                if exc.status == 409 and attempt + 1 < _CONFLICT_RETRIES:
                    continue  # someone else changed it meanwhile: re-read, re-merge
                raise
            self.changed = True
            self.summary["trust"]["added"] = ["%s (%s)" % (fp, new_managed[fp]) for fp in added]
            self.summary["trust"]["removed"] = ["%s (%s)" % (fp, managed[fp]) for fp in removed]
            self._record_diff(text, new_text, "ConfigMap %s/istio key mesh" % self.namespace)
            return
        raise K8sError("%s: ConfigMap %s/istio kept changing; gave up after %d attempts"
                       % (self.local, self.namespace, _CONFLICT_RETRIES))

    def check_istiod(self, deployment="istiod"):
        try:
            dep = self.client.get(group_path("apps", "v1", "deployments", self.namespace, deployment),
                                  what="get Deployment %s/%s" % (self.namespace, deployment))
        except K8sError as exc:
            self.warnings.append("%s: could not read Deployment %s/%s to check ISTIO_MULTIROOT_MESH (%s)"
                                 % (self.local, self.namespace, deployment, exc))
            return
        env = None
        if dep is not None:
            env = {}
            for container in ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
                if container.get("name") in ("discovery", "istiod") or len(env) == 0:
                    for item in container.get("env") or []:
                        if "value" in item:
                            env[item["name"]] = item["value"]
        for warning in check_multiroot(self.mesh, env):
            self.warnings.append("%s: %s" % (self.local, warning))
