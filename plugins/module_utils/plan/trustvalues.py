# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""``trust_mode: values``: Helm (chart ``istiod``) and istioctl render the mesh ConfigMap from ``meshConfig`` and rewrite it on
every upgrade, so the peers' roots are returned as values to add (pure), with whether the live mesh config carries them."""

from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import fingerprint, merge_roots


def render(ca_entries, mesh, revision=None):
    """The ``trust`` result; caCertificates is the ConfigMap mode's merge (one entry per distinct root)."""
    peers_by_fp, wanted = merge_roots({}, ca_entries, set())[:2]
    live = {}  # root -> the trust domains the live mesh config gives it
    for entry in (mesh or {}).get("caCertificates") or []:
        if fingerprint(entry):
            live.setdefault(fingerprint(entry), set()).update(entry.get("trustDomains") or [])
    missing = []
    for fp, domains in ((fingerprint(entry), set(entry["trustDomains"])) for entry in wanted):
        if fp not in live or not domains <= live[fp]:
            missing.append("%s (%s)" % (fp, peers_by_fp.get(fp, "?")))
    values = {"meshConfig": {"caCertificates": wanted}}
    spec = dict(values, revision=revision) if revision and revision != "default" else values
    return {"mode": "values", "helm_values": values, "in_place": not missing,
            "istio_operator": {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec},
            "missing": missing}
