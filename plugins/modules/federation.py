#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: federation
short_description: Federate a cluster's Istio mesh with its peers
version_added: 0.1.0
description:
  - Converges one cluster onto the federation described by its own card and its peers' cards
    (as returned by M(meshfed.istio.cluster_facts)).
  - Writes, per peer, a cluster-scoped C(IstioFederation) (peer coordinates in C(spec), last gathered
    metadata in C(status.metadataCache)); per peer public hostname a C(ServiceEntry) routed to the peer's
    gateway and a C(DestinationRule) with C(ISTIO_MUTUAL); the export C(Gateway) (C(AUTO_PASSTHROUGH),
    hosts limited to the local public hostnames); and the peers' root certificates in the mesh config's
    C(caCertificates), each scoped to the peer's trust domain.
  - Objects are written with server-side apply (field manager C(meshfed.istio)) and labelled
    C(app.kubernetes.io/managed-by=meshfed.istio). Owned objects that are no longer desired are pruned;
    objects the collection does not own are never changed and are reported.
  - Nothing is pruned for peers listed in O(unreachable_peers); what this cluster knows of them stays.
  - Only the C(caCertificates) list of the C(mesh) key of ConfigMap C(istio) is edited; other settings and
    comments are kept as they are. Entries the collection did not add are never touched.
attributes:
  check_mode:
    support: full
    description: Changed objects are sent as server-side dry runs, so schema errors show without writing.
  diff_mode:
    support: full
    description: Each changed object, and the mesh config text, is shown before and after.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.auth
options:
  local:
    description: The card of the cluster being changed.
    type: dict
    required: true
  peers:
    description: Cards of the peers whose facts were gathered this run.
    type: list
    elements: dict
    default: []
  unreachable_peers:
    description:
      - Names of federation members whose facts could not be gathered this run.
      - What the local cluster holds for them (objects and trust) is kept untouched.
    type: list
    elements: str
    default: []
  istio_namespace:
    description: Namespace for the Istio objects and of ConfigMap C(istio). Defaults to the local card's.
    type: str
  istio_api_version:
    description: Version of C(networking.istio.io) to write. C(v1) needs Istio 1.22 or later.
    type: str
    default: v1
    choices: [v1, v1beta1]
  export_gateway:
    description: Whether to manage the export C(Gateway) for the local public Services.
    type: bool
    default: true
  check_local_services:
    description:
      - Refuse to import a hostname that a local Service already serves (a local Service silently
        shadows an imported ServiceEntry). Costs one Service list.
    type: bool
    default: true
  istiod_deployment:
    description: Name of the istiod Deployment checked for C(ISTIO_MULTIROOT_MESH=true); a warning is given if it lacks it.
    type: str
    default: istiod
notes:
  - Istio merges every trusted root into one flat bundle, so a peer's root can in principle vouch for
    identities of any trust domain. C(trustDomains) on each entry scopes the inbound trust-domain check;
    do not federate with a cluster whose CA you would not trust for your own identities.
  - Peer roots in C(caCertificates) only take effect when istiod runs with C(ISTIO_MULTIROOT_MESH=true) and
    proxies with C(PROXY_CONFIG_XDS_AGENT=true); the module checks both and warns. Ambient (ztunnel) does
    not support extra roots.
seealso:
  - module: meshfed.istio.cluster_facts
"""

EXAMPLES = r"""
- name: Apply the federation on this cluster from the peers' cards
  meshfed.istio.federation:
    kubeconfig: "{{ meshfed_kubeconfig }}"
    context: "{{ meshfed_context }}"
    local: "{{ meshfed_card }}"
    peers: "{{ federation.peers }}"
    unreachable_peers: "{{ federation.unreachable }}"
  vars:
    federation: "{{ hostvars | meshfed.istio.federation_peers(ansible_play_hosts_all, inventory_hostname) }}"

- name: Remove every imported service and trusted root (leave the federation)
  meshfed.istio.federation:
    kubeconfig: ~/.kube/cluster-a
    local: "{{ meshfed_card }}"
    peers: []
"""

RETURN = r"""
summary:
  description: What was (or in check mode would be) done.
  returned: always
  type: dict
  contains:
    created:
      description: Objects created, as C(Kind namespace/name).
      type: list
      elements: str
    updated:
      description: Objects (or their status) updated.
      type: list
      elements: str
    pruned:
      description: Owned objects deleted because they are no longer desired.
      type: list
      elements: str
    unchanged:
      description: Number of desired objects already up to date.
      type: int
    kept_unreachable:
      description: Owned objects kept because their peer was unreachable.
      type: list
      elements: str
    conflicts:
      description: Objects with a desired name that the collection does not own (left untouched).
      type: list
      elements: str
    trust:
      description:
        - Root fingerprints added to and removed from C(caCertificates), with their peer; C(kept) lists the
          roots kept because their peer was unreachable.
      type: dict
  sample: {"created": ["ServiceEntry istio-system/meshfed-cluster-b-xyz-bar"], "updated": [], "pruned": [],
           "unchanged": 3, "kept_unreachable": [], "conflicts": [], "trust": {"added": ["9f2c... (cluster-b)"], "removed": [], "kept": []}}
api_calls:
  description: Number of API requests made, per verb.
  returned: always
  type: dict
  sample: {"get": 2, "list": 5, "apply": 3}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshfed.istio.plugins.module_utils.k8s import AUTH_ARG_SPEC
from ansible_collections.meshfed.istio.plugins.module_utils.runners import FederationRun, run_module


def argument_spec():
    return dict(
        AUTH_ARG_SPEC,
        local=dict(type="dict", required=True),
        peers=dict(type="list", elements="dict", default=[]),
        unreachable_peers=dict(type="list", elements="str", default=[]),
        istio_namespace=dict(type="str"),
        istio_api_version=dict(type="str", default="v1", choices=["v1", "v1beta1"]),
        export_gateway=dict(type="bool", default=True),
        check_local_services=dict(type="bool", default=True),
        istiod_deployment=dict(type="str", default="istiod"),
    )


def main():
    run_module(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True), FederationRun)


if __name__ == "__main__":
    main()
