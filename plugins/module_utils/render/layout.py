# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Render mode (GitOps delivery): what one cluster's directory holds, as text. Pure, no I/O.

    kustomization.yaml                     lists the object manifests only (install inputs and state are never applied)
    <kind>-[<namespace>-]<name>.yaml       one object each, exactly what apply mode writes
    istio-install/istiod-values.yaml       trust: Helm values of the istiod chart (meshConfig.caCertificates),
    istio-install/istio-operator.yaml      and the same as an IstioOperator overlay
    .meshfed-render.yaml                   state: the files written (SHA-256) and the IstioFederation status
                                           GitOps does not carry; read back by the next render
"""

import hashlib
import re

from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import yaml
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MeshfedError
from ansible_collections.meshfed.istio.plugins.module_utils.plan import federations
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import BY_NAME, object_key

KUSTOMIZATION = "kustomization.yaml"
STATE_FILE = ".meshfed-render.yaml"
HELM_VALUES = "istio-install/istiod-values.yaml"
ISTIO_OPERATOR = "istio-install/istio-operator.yaml"
STATE_VERSION = 1
_SAFE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

_OBJECT_HEADER = ("# Rendered by meshfed.istio for cluster %s. Do not edit: the next render rewrites it\n"
                  "# (the collection owns this file; see %s).\n")
_KUSTOMIZATION_HEADER = ("# Rendered by meshfed.istio for cluster %s: the federation objects, for Argo CD or Flux\n"
                         "# (apply with server-side apply and prune). istio-install/ is the Istio install's input,\n"
                         "# not listed here.\n")
_VALUES_HEADER = ("# Rendered by meshfed.istio for cluster %s: the federation peers' root certificates.\n"
                  "# %s\n")
_INSTALL_FILES = ((HELM_VALUES, "helm_values", "Add to the istiod chart's values (helm upgrade ... -f istiod-values.yaml)."),
                  (ISTIO_OPERATOR, "istio_operator",
                   "Merge into your IstioOperator (istioctl install -f ... -f istio-operator.yaml)."))
_STATE_HEADER = ("# meshfed.istio render state for cluster %s. Not a Kubernetes object (kustomization.yaml does\n"
                 "# not list it). Commit it with the manifests: the next render reads which files it wrote\n"
                 "# (only those are ever rewritten or removed) and the IstioFederation status it keeps here.\n")


def _text(header, value):
    """``header`` and ``value`` as YAML with sorted keys: the same value always gives the same bytes."""
    return (header + yaml.safe_dump(value, sort_keys=True, default_flow_style=False, width=4096)).encode("utf-8")


def _load(name, data, fix=""):
    try:
        return yaml.safe_load(data.decode("utf-8"))
    except (ValueError, yaml.YAMLError) as exc:
        raise MeshfedError("%s is not valid YAML (%s)%s" % (name, exc, fix), field="render_dir")


def manifest_path(obj):
    """``<kind>-[<namespace>-]<name>.yaml``: one file per object, named after its key."""
    kind, namespace, name = object_key(obj)
    parts = [kind.lower()] + ([namespace] if namespace and BY_NAME[kind].namespaced else []) + [name]
    for part in parts:
        if not _SAFE.match(part or ""):
            raise MeshfedError("cannot name a file after %s %r" % (kind, part), field="render_dir")
    return "-".join(parts) + ".yaml"


def directory(cluster, objects, kept, trust, statuses):
    """Every file of the directory (``{path: bytes}``): the manifests of ``objects`` (``{path: object}``) and ``kept``,
    kustomization.yaml listing them, ``trust`` (Helm values, IstioOperator overlay) and the state."""
    out = {path: _text(_OBJECT_HEADER % (cluster, STATE_FILE), obj) for path, obj in objects.items()} | kept
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": sorted(out)}
    out[KUSTOMIZATION] = _text(_KUSTOMIZATION_HEADER % cluster, kustomization)
    for path, key, hint in _INSTALL_FILES:
        out[path] = _text(_VALUES_HEADER % (cluster, hint), trust[key])
    files = {path: hashlib.sha256(data).hexdigest() for path, data in out.items()}
    out[STATE_FILE] = _text(_STATE_HEADER % cluster, {"meshfed_render": STATE_VERSION, "cluster": cluster, "files": files,
                                                      "status": statuses})
    return out


def parse_state(cluster, data):
    """``(files {path: sha256}, statuses {peer: status})`` of a state file's bytes; every path is inside the
    directory (a state naming ``../`` or ``/`` is refused)."""
    state = _load(STATE_FILE, data, "; restore it from Git")
    if not isinstance(state, dict) or state.get("meshfed_render") != STATE_VERSION:
        raise MeshfedError("%s is not a meshfed.istio render state (version %s)" % (STATE_FILE, STATE_VERSION),
                           field="render_dir")
    if state.get("cluster") != cluster:
        raise MeshfedError("the directory holds the render of cluster %r, not of this cluster; give each cluster "
                           "its own directory" % state.get("cluster"), field="render_dir")
    files = state.get("files") or {}
    for path in files:
        if path == STATE_FILE or {"", ".."} & set(path.split("/")):  # absolute, "..", or "a//b"
            raise MeshfedError("%s lists %r, which is not a file inside the directory" % (STATE_FILE, path),
                               field="render_dir")
    return files, state.get("status") or {}


def parse_manifest(path, data, statuses):
    """The object in a manifest this collection wrote (an IstioFederation with its status), None if not ours."""
    obj = _load(path, data)
    if not (isinstance(obj, dict) and obj.get("kind") in BY_NAME and isinstance(obj.get("metadata"), dict)):
        return None
    name = obj["metadata"].get("name")
    return dict(obj, status=statuses[name]) if obj["kind"] == "IstioFederation" and name in statuses else obj


def next_statuses(desired, previous, now):
    """The IstioFederation statuses as apply mode leaves them: the metadata cache (``lastChangeTimestamp`` moves only
    when it changes) and the ``MetadataVerified`` conditions; preserved (unreachable) peers keep theirs, with a refusal condition."""
    out = {}
    for name, cache in sorted(desired["statuses"].items()):
        old = (previous.get(name) or {}).get("metadataCache") or {}
        if dict((k, v) for k, v in old.items() if k != "lastChangeTimestamp") != cache or not old:
            old = dict(cache, lastChangeTimestamp=now)
        out[name] = {"metadataCache": old}
    for name in sorted(set(desired["preserve_peers"]) & set(previous) - set(out)):
        out[name] = dict(previous[name])
    for name, status in out.items():
        kept, conditions = (previous.get(name) or {}).get("conditions"), desired["conditions"].get(name)
        if conditions:
            status["conditions"] = kept if federations.same_conditions(kept, conditions) else federations.merge_conditions(kept, conditions, now)
    return out
