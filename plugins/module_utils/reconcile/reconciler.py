# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Converge one cluster onto a plan (planner.py) with a constant number of reads (one cluster-wide LIST per kind,
Services' metadata on a possible clash, the mesh ConfigMap, istiod), then one write per change: a rerun changes nothing."""

import copy
import json

from ansible_collections.meshfed.istio.plugins.module_utils.plan.federations import merge_conditions, same_conditions
from ansible_collections.meshfed.istio.plugins.module_utils.plan import trustvalues
from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import yaml
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.common.apipaths import api_path, core_path
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import (
    BY_NAME, CLUSTER_LABEL, HASH_ANNOTATION, KINDS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_CA_ANNOTATION, PEER_LABEL,
    ROLE_LABEL, api_version as kind_api_version, deliverable, kind_path, object_key, object_ref)
from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import istiod_env
from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import (
    check_multiroot, fingerprint, load_mesh, update_ca_certificates)
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import iso, utcnow
from ansible_collections.meshfed.istio.plugins.module_utils.kube.parallel import run_jobs

_CONFLICT_RETRIES = 5


def contains(actual, desired):
    """True when ``actual`` holds everything in ``desired`` (dicts by subset, lists exactly)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(actual) == len(desired) and all(map(contains, actual, desired))
    return actual == desired


def is_owned(obj, cluster):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(CLUSTER_LABEL) == cluster


def trimmed(obj):
    """An object as a user reads it in a diff: no server bookkeeping."""
    out = copy.deepcopy(obj or {})
    for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"):
        (out.get("metadata") or {}).pop(key, None)
    out.pop("status", None)
    return out


def _listed(managed, fingerprints):
    """``fingerprint (peers)`` of each root, as the trust summary lists them."""
    return ["%s (%s)" % (fp, managed[fp]) for fp in sorted(fingerprints)]


class Reconciler(object):
    """Writes a plan onto one cluster, recording what it did in ``summary``, ``diffs`` and ``warnings``."""

    def __init__(self, client, cluster, namespace, api_version="v1", check_mode=False, want_diff=False,
                 write_concurrency=1, mesh_configmap="istio", trust_mode="configmap", revision=None):
        self.client, self.cluster, self.namespace, self.api_version = client, cluster, namespace, api_version
        self.check_mode, self.want_diff, self.write_concurrency = check_mode, want_diff, write_concurrency
        self.trust_mode, self.revision = trust_mode, revision
        self.mesh_ref = "%s/%s" % (namespace, mesh_configmap)  # the mesh ConfigMap, as messages name it
        self.mesh_path = core_path("configmaps", namespace, mesh_configmap)
        self.summary = {"created": [], "updated": [], "pruned": [], "unchanged": 0, "kept_unreachable": [],
                        "conflicts": [], "trust": {"added": [], "removed": [], "kept": [], "reverted": []}}
        self.diffs, self.warnings, self.changed, self.trust = [], [], False, None

    def converge(self, desired, existing=None):
        """Trust, objects and statuses, then pruning; returns the mesh config as left (for :meth:`check_istiod`)."""
        existing = self.list_existing() if existing is None else existing
        self._add_warnings(desired.get("warnings") or [])
        mesh = self.converge_trust(desired) if self.trust_mode == "configmap" else self.trust_values(desired)
        keys = self.converge_objects(desired, existing)
        owned = self.federations(existing)  # an unreachable peer's status says why its metadata was refused
        refused = sorted((set(desired["conditions"]) - set(desired["statuses"])) & set(owned))
        steps = [self._status_step(name, owned[name], None, desired["conditions"][name]) for name in refused]
        run_jobs([[step] for step in steps if step], 1)
        self.prune(existing, keys, set(desired["preserve_peers"]))
        return mesh

    def _warn(self, text):
        self._add_warnings([prefixed(self.cluster, text)])

    def _add_warnings(self, texts):
        """The one way warnings are recorded: each once (the trust merge runs again after a conflict)."""
        self.warnings.extend(text for text in texts if text not in self.warnings)

    def _changed(self, ref, before, after, listed_in=None):
        """A write went out (in check mode, would): listed in ``summary[listed_in]``, shown in --diff."""
        self.changed = True
        if listed_in:
            self.summary[listed_in].append(ref)
        if self.want_diff:  # objects as YAML text: line diffs read far better than JSON
            before, after = [(yaml.safe_dump(v, sort_keys=True, default_flow_style=False, width=4096) if v else "")
                             if isinstance(v, dict) else v for v in (before, after)]
            self.diffs.append({"before": before, "after": after, "before_header": ref, "after_header": ref})

    # -- reads ------------------------------------------------------------------------------------
    def list_existing(self):
        """Every object of each kind, cluster-wide: ours to converge and prune, others' to respect."""
        existing = {}
        for kind in KINDS:
            try:
                items = self.client.list(kind_path(kind.name, None, self.api_version), what="list %s" % kind.name)
            except K8sError as exc:
                if exc.status == 404:
                    raise K8sError("the %s API (%s) is not served; install %s" % (
                        kind.name, kind_api_version(kind.name, self.api_version), kind.install),
                        status=404, cluster=self.cluster)
                raise
            existing.update((object_key(dict(item, kind=kind.name)), item) for item in items)
        return existing

    def federations(self, existing):
        """``{peer: IstioFederation}`` this cluster wrote: its record of the federation's members."""
        return dict((key[2], obj) for key, obj in existing.items()
                    if key[0] == "IstioFederation" and is_owned(obj, self.cluster))

    def held_addresses(self, existing):
        """``{host: address}`` of the imports this cluster holds: addresses stay put between runs."""
        imports = [obj.get("spec") or {} for key, obj in existing.items()
                   if key[0] == "ServiceEntry" and is_owned(obj, self.cluster) and obj["metadata"]["labels"].get(ROLE_LABEL) == "import"]
        return dict((spec["hosts"][0], spec["addresses"][0]) for spec in imports
                    if len(spec.get("hosts") or []) == 1 and len(spec.get("addresses") or []) == 1)

    def other_gateways(self, existing):
        """Gateways this collection did not write for this cluster (they share the gateway workload)."""
        return [obj for key, obj in sorted(existing.items()) if key[0] == "Gateway" and not is_owned(obj, self.cluster)]

    def local_hostnames(self, cluster_domain, hostnames):
        """Which of ``hostnames`` a local Service serves: one LIST of Services' metadata, only if one is under our domain."""
        suffix = ".svc." + cluster_domain
        if not any(host.endswith(suffix) for host in hostnames):
            return set()
        metas = [svc.get("metadata") or {} for svc in self.client.list(core_path("services"), what="list Services",
                                                                       metadata_only=True)]
        return set(hostnames) & set("%s.%s%s" % (meta.get("name"), meta.get("namespace"), suffix) for meta in metas)

    # -- objects -----------------------------------------------------------------------------------
    def deliverable(self, desired, existing, fate="left untouched"):
        """``(objects, conflicts)`` of :func:`kinds.deliverable`; each conflict is reported (summary, warning)."""
        objects, conflicts = deliverable(desired, existing, lambda obj: is_owned(obj, self.cluster))
        for obj in conflicts:
            owner = ((existing[object_key(obj)].get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL, "nobody we know")
            self.summary["conflicts"].append(object_ref(obj))
            self._warn("%s exists and is not managed by meshfed.istio for this cluster (managed-by: %s); %s, so it "
                       "is not federated. Rename or remove it." % (object_ref(obj), owner, fate))
        return objects, conflicts

    def converge_objects(self, desired, existing):
        """Apply what differs, IstioFederations (and status) first; returns the keys wanted (the rest may be pruned)."""
        objects, conflicts = self.deliverable(desired, existing)
        waves = ([], [])
        for obj in objects:
            current = existing.get(object_key(obj))
            steps = [self._apply_step(obj, current)]
            if obj["kind"] == "IstioFederation":
                name = obj["metadata"]["name"]
                steps.append(self._status_step(name, current, desired["statuses"][name], desired["conditions"].get(name)))
            waves[obj["kind"] != "IstioFederation"].append([step for step in steps if step])
        for jobs in waves:
            run_jobs([job for job in jobs if job], self.write_concurrency)
        # a conflict's key stays wanted (never pruned); a blocked import's owned DestinationRule is pruned
        return set(object_key(obj) for obj in objects + conflicts)

    def _apply_step(self, obj, current):
        """``(call, record)`` writing ``obj``, or None when it is up to date."""
        meta, ref, held = obj["metadata"], object_ref(obj), (current or {}).get("metadata") or {}
        same_hash = (held.get("annotations") or {}).get(HASH_ANNOTATION) == meta["annotations"][HASH_ANNOTATION]
        same_content = contains((current or {}).get("spec"), obj.get("spec")) and contains(held.get("labels"), meta.get("labels"))
        if current is not None and same_hash and same_content:
            self.summary["unchanged"] += 1
            return None
        path = kind_path(obj["kind"], meta.get("namespace"), self.api_version, meta["name"])
        return (lambda: self.client.apply(path, obj, dry_run=self.check_mode, what="apply " + ref),
                lambda _result: self._changed(ref, trimmed(current), trimmed(obj),
                                              "created" if current is None else "updated"))

    def _status_step(self, name, current, cache, conditions):
        """``(call, record)`` writing ``name``'s status (``cache`` None: a peer not gathered keeps its cache), or None."""
        status = (current or {}).get("status") or {}
        held = dict((k, v) for k, v in (status.get("metadataCache") or {}).items() if k != "lastChangeTimestamp")
        if self.check_mode and current is None:
            return None  # nothing to dry-run against yet; the object's creation is already reported
        if current is not None and cache in (None, held) and same_conditions(status.get("conditions"), conditions or []):
            return None
        if cache is None:
            new, before = dict(status), status
        else:
            new = {"metadataCache": dict(cache, lastChangeTimestamp=iso(utcnow()))}
            before = {"metadataCache": held, "conditions": status.get("conditions") or []}
        if conditions:
            new["conditions"] = merge_conditions(status.get("conditions"), conditions, iso(utcnow()))
        body = {"apiVersion": kind_api_version("IstioFederation", self.api_version), "kind": "IstioFederation",
                "metadata": {"name": name}, "status": new}
        path, ref = kind_path("IstioFederation", None, self.api_version, name, "status"), "IstioFederation " + name

        def record(_result):
            listed = ref in self.summary["created"] + self.summary["updated"]  # the object's own write says it
            self._changed(ref + " status", before, new, None if listed else "updated")
        return lambda: self.client.apply(path, body, dry_run=self.check_mode, what="apply status of " + ref), record

    def prune(self, existing, desired_keys, preserve_peers):
        """Delete owned objects no longer desired, one ``prune_order`` level after the other (imports first)."""
        levels = {}
        for key in sorted(existing, key=lambda k: (BY_NAME[k[0]].prune_order, k[1] or "", k[2])):
            obj = existing[key]
            if key in desired_keys or not is_owned(obj, self.cluster):
                continue
            if (obj["metadata"].get("labels") or {}).get(PEER_LABEL) in preserve_peers:
                self.summary["kept_unreachable"].append(object_ref(obj))
            else:
                levels.setdefault(BY_NAME[key[0]].prune_order, []).append([self._delete_step(key, obj)])
        for order in sorted(levels):
            run_jobs(levels[order], self.write_concurrency)

    def _delete_step(self, key, obj):
        """``(call, record)`` deleting ``obj``; one that changed meanwhile (409) is left for the next run."""
        path, ref = kind_path(key[0], key[1], self.api_version, key[2]), object_ref(obj)

        def call():
            try:
                if not self.check_mode:
                    self.client.delete(path, resource_version=obj["metadata"].get("resourceVersion"), what="delete " + ref)
            except K8sError as exc:
                if exc.status != 409:
                    raise
                return False
            return True

        def record(deleted):
            if deleted:
                self._changed(ref, trimmed(obj), {}, "pruned")
            else:
                self._warn("%s changed while pruning it; left for the next run" % ref)
        return call, record

    # -- trust ----------------------------------------------------------------------------------------
    def converge_trust(self, desired):
        """Merge the peers' roots into the mesh config (annotation ``managed``: ``{sha256: peers}`` we added), patch it
        guarded by its resourceVersion, re-merge on a conflict (409); returns the mesh config."""
        trust, preserved = self.summary["trust"], set(desired["preserve_peers"])
        wanted = set(pem_sha256(e["pem"]) for e in desired["ca_entries"])
        for attempt in range(1, _CONFLICT_RETRIES + 1):
            cm, text = self._mesh_configmap()
            try:
                managed = json.loads(((cm.get("metadata") or {}).get("annotations") or {}).get(MANAGED_CA_ANNOTATION) or "{}")
                if not isinstance(managed, dict):
                    raise ValueError("not a mapping")
            except ValueError as exc:
                raise K8sError("annotation %s on ConfigMap %s is not valid JSON (%s); fix or remove it"
                               % (MANAGED_CA_ANNOTATION, self.mesh_ref, exc), cluster=self.cluster)
            present = set(fingerprint(entry) for entry in load_mesh(text, self.cluster).get("caCertificates") or [])
            gone = [fp for fp in managed if fp not in present and fp in wanted]
            trust["reverted"] = _listed(managed, gone)
            if gone:  # roots an earlier run wrote are gone: an installer rewrote the mesh config
                self._warn("the roots of %s that an earlier run wrote to ConfigMap %s were gone: something rewrote the mesh config (a Helm "
                           "or istioctl upgrade renders it from its values) and reverted them; restored now. Until now this cluster rejected "
                           "those peers' workloads. To keep them across upgrades, put them in the install's values (trust_mode: values)"
                           % (", ".join(sorted(set(managed[fp] for fp in gone))), self.mesh_ref))
            new_text, new_managed, changed, warnings = update_ca_certificates(
                text, self.cluster, desired["ca_entries"], managed, preserve_peers=desired["preserve_peers"],
                configmap=self.mesh_ref)
            self._add_warnings(warnings)
            trust["kept"] = _listed(new_managed, [fp for fp, peers in new_managed.items() if set(peers.split(",")) & preserved])
            body = {"metadata": {"resourceVersion": cm["metadata"]["resourceVersion"],
                                 "annotations": {MANAGED_CA_ANNOTATION: json.dumps(new_managed, sort_keys=True)}},
                    "data": {"mesh": new_text}}
            try:
                if changed or new_managed != managed:
                    self.client.merge_patch(self.mesh_path, body, dry_run=self.check_mode,
                                            what="patch ConfigMap " + self.mesh_ref)
                    trust["added"] = _listed(new_managed, set(new_managed) - set(managed))
                    trust["removed"] = _listed(managed, set(managed) - set(new_managed))
                    self._changed("ConfigMap %s key mesh" % self.mesh_ref, text, new_text)
                return load_mesh(new_text, self.cluster)
            except K8sError as exc:
                if exc.status != 409 or attempt == _CONFLICT_RETRIES:
                    raise  # else someone else changed it meanwhile: re-read, re-merge

    def _mesh_configmap(self):
        """The mesh ConfigMap and the text of its ``mesh`` key."""
        cm = self.client.get(self.mesh_path, what="get ConfigMap " + self.mesh_ref)
        if cm is None:
            raise K8sError("ConfigMap %s not found; cannot add the peers' roots" % self.mesh_ref,
                           cluster=self.cluster, field="istio_namespace")
        return cm, (cm.get("data") or {}).get("mesh") or ""

    def trust_values(self, desired):
        """trust_mode values: nothing written; the Helm values / IstioOperator overlay, and whether they are live."""
        mesh = load_mesh(self._mesh_configmap()[1], self.cluster)
        self.trust = trustvalues.render(desired["ca_entries"], mesh, self.revision)
        if not self.trust["in_place"]:
            self._warn("trust_mode values: the live mesh config (ConfigMap %s) lacks the peer roots %s; add "
                       "the returned trust.helm_values (or trust.istio_operator) to your Istio install"
                       % (self.mesh_ref, ", ".join(self.trust["missing"])))
        return mesh

    def check_istiod(self, mesh, deployment="istiod"):
        """Warn when the peers' roots in ``mesh`` (as converge_trust left it) would not take effect."""
        ref = "%s/%s" % (self.namespace, deployment)
        try:
            dep = self.client.get(api_path("/apis/apps/v1", "deployments", self.namespace, deployment),
                                  what="get Deployment %s" % ref)
        except K8sError as exc:
            self._warn("could not read Deployment %s to check ISTIO_MULTIROOT_MESH (%s)" % (ref, exc))
            return
        for warning in check_multiroot(mesh, None if dep is None else istiod_env(dep)):
            self._warn(warning)
