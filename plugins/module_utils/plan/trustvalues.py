# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``trust_mode: values``: the peers' roots as install values, never written to the mesh ConfigMap.

Helm (chart ``istiod``, value ``meshConfig``) and istioctl (``IstioOperator.spec.meshConfig``)
render ConfigMap ``istio[-<rev>]`` key ``mesh`` from their values and rewrite it on every upgrade.
Where the install pipeline owns that ConfigMap, the collection emits the exact values to add and,
on later runs, reports whether the live mesh config carries them. Pure functions, no I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import fingerprint, merge_roots, render_roots


def render(ca_entries, mesh, revision=None):
    """The ``trust`` result of values mode: Helm values, IstioOperator overlay, and whether they are live.
    caCertificates is the ConfigMap mode's merge (one entry per distinct root), with no entry of anyone else."""
    slots = {}
    merge_roots(slots, ca_entries, set())
    peers_by_fp, wanted = render_roots(slots)
    live, missing = {}, []  # which wanted entries the live mesh config has (same root, trust domains included)
    for entry in (mesh or {}).get("caCertificates") or []:
        fp = fingerprint(entry)
        if fp:
            live.setdefault(fp, set()).update(entry.get("trustDomains") or [])
    for entry in wanted:
        fp = fingerprint(entry)
        if fp not in live or not set(entry["trustDomains"]) <= live[fp]:
            missing.append("%s (%s)" % (fp, peers_by_fp.get(fp, "?")))
    overlay = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
               "spec": {"meshConfig": {"caCertificates": wanted}}}
    if revision and revision != "default":
        overlay["spec"]["revision"] = revision
    return {
        "mode": "values",
        "helm_values": {"meshConfig": {"caCertificates": wanted}},
        "istio_operator": overlay,
        "in_place": not missing,
        "missing": missing,
    }
