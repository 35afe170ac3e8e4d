# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``trust_mode: values``: the peers' roots as install values, never written to the mesh ConfigMap (pure).

Helm (chart ``istiod``, value ``meshConfig``) and istioctl (``IstioOperator.spec.meshConfig``) render
ConfigMap ``istio[-<rev>]`` from their values and rewrite it on every upgrade: where the install owns it,
the collection emits the values to add and reports whether the live mesh config carries them.
"""

from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import fingerprint, merge_roots


def render(ca_entries, mesh, revision=None):
    """The ``trust`` result: Helm values, IstioOperator overlay, and whether the live ``mesh`` has them.
    caCertificates is the ConfigMap mode's merge (one entry per distinct root), with no entry of anyone else."""
    peers_by_fp, wanted = merge_roots({}, ca_entries, set())[:2]
    live = {}  # root -> the trust domains the live mesh config gives it
    for entry in (mesh or {}).get("caCertificates") or []:
        if fingerprint(entry):
            live.setdefault(fingerprint(entry), set()).update(entry.get("trustDomains") or [])
    missing = []
    for fp, domains in ((fingerprint(entry), set(entry["trustDomains"])) for entry in wanted):
        if fp not in live or not domains <= live[fp]:
            missing.append("%s (%s)" % (fp, peers_by_fp.get(fp, "?")))
    spec = {"meshConfig": {"caCertificates": wanted}}
    if revision and revision != "default":
        spec["revision"] = revision
    return {"mode": "values", "helm_values": {"meshConfig": {"caCertificates": wanted}}, "in_place": not missing,
            "istio_operator": {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec},
            "missing": missing}
