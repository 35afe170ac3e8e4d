#!/usr/bin/python
# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)

DOCUMENTATION = r"""
module: federation
short_description: Federate a cluster's Istio mesh with its peers
version_added: 1.0.0
description:
  - Converges a cluster onto the federation its card and its peers' (M(meshfed.istio.cluster_info), M(meshfed.istio.peer_metadata)) describe.
  - Writes, per peer, a cluster-scoped C(IstioFederation) (peer coordinates in C(spec), last gathered metadata in C(status.metadataCache));
    per peer public hostname a C(ServiceEntry) routed to the peer's gateway and a C(DestinationRule) with C(ISTIO_MUTUAL); the export
    C(Gateway) (C(AUTO_PASSTHROUGH), hosts limited to the local public hostnames); and the peers' roots in the mesh config's
    C(caCertificates), each scoped to the peer's trust domain.
  - Objects are written with server-side apply (field manager C(meshfed.istio)) and labelled C(app.kubernetes.io/managed-by=meshfed.istio).
    Owned objects no longer desired are pruned; objects the collection does not own are never changed and are reported.
  - A metadata peer's C(IstioFederation) also records its endpoint and pins in C(spec), its verified identity and validity in
    C(status.metadataCache.public), and condition C(MetadataVerified). Metadata older than the cached copy is refused as a replay
    (the peer is kept as unreachable).
attributes:
  check_mode:
    support: full
    description: Changed objects are sent as server-side dry runs, so schema errors show without writing.
  diff_mode:
    support: full
    description: Each changed object and the mesh config text (with O(delivery=render), each file), before and after.
author: meshfed.istio contributors (@meshfed)
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
    description: Members whose facts could not be gathered this run; what this cluster holds of them (objects, trust) is kept.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) federates this cluster with O(peers).
      - V(absent) makes it leave the federation, removing every object it owns and every peer root it added.
    type: str
    choices: [present, absent]
    default: present
  leaving_peers:
    description: Peers that leave (their host has C(state=absent)); all this cluster holds of them is removed, reachable or not.
    type: list
    elements: str
    default: []
  members:
    description: Every federation member in the inventory, in this run or not. Used by O(prune_absent) only.
    type: list
    elements: str
    default: []
  prune_absent:
    description: Remove known peers (C(IstioFederation) objects) that are not in O(members) at all (RV(summary.pruned_absent)). Otherwise a known peer
      in neither O(peers), O(unreachable_peers) nor O(leaving_peers) is B(kept) and reported in RV(summary.not_in_run), so C(--limit), job slices and
      narrower inventories remove nothing.
    type: bool
    default: false
  refused_peers:
    description: Peers among O(unreachable_peers) whose metadata M(meshfed.istio.peer_metadata) refused this run, as
      C(name -> {reason, message}). Their C(IstioFederation) gets condition C(MetadataVerified=False); all else it holds is kept.
    type: dict
    default: {}
  istio_namespace:
    description: Namespace of the Istio objects and the mesh ConfigMap. Defaults to the local card's.
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
  metadata_published:
    description: This cluster publishes its metadata (M(meshfed.istio.federation_metadata)), so its export C(Gateway) is
      written even while no peer is known, for the peers importing from the published metadata.
    type: bool
    default: false
  check_local_services:
    description: Refuse to import a hostname a local Service already serves (it would silently shadow the imported C(ServiceEntry)).
    type: bool
    default: true
  istiod_deployment:
    description: The istiod Deployment checked for C(ISTIO_MULTIROOT_MESH=true) (a warning if it lacks it). Defaults to the card's.
    type: str
  write_concurrency:
    description: Most write requests in flight at once on this cluster. Throttled requests (HTTP 429) are retried after C(Retry-After).
    type: int
    default: 8
  trust_mode:
    description:
      - How the peers' roots reach C(meshConfig.caCertificates).
      - V(configmap) edits only that list in the mesh ConfigMap (C(istio), or C(istio-<revision>) of the card's revision),
        keeping everything else byte for byte; roots an earlier run wrote that are gone (a Helm or istioctl upgrade
        rewrote the ConfigMap) are reported (RV(summary.trust), a warning) and restored.
      - V(values) writes nothing there; RV(trust) returns the Helm values and IstioOperator overlay for your install pipeline.
    type: str
    default: configmap
    choices: [configmap, values]
  dns_address_range:
    description: CIDR from which each imported hostname gets one stable virtual address (C(ServiceEntry) C(addresses)), as
      Istio's DNS proxy only resolves hosts with one. The default sits next to Istio's own auto-allocation range (240.240.0.0/16).
    type: str
    default: 240.241.0.0/16
  import_namespaces:
    description: C(exportTo) of the imported ServiceEntries and DestinationRules (whose workloads see the peers' services).
      C(["*"]) is every namespace; set it rather than depend on the mesh's C(defaultServiceExportTo).
    type: list
    elements: str
    default: ["*"]
  import_hosts:
    description: The peers' public hostnames to import, as shell-style globs per peer name (key C(*) for any other peer), e.g. C(cluster-b)
      mapped to C([*.xyz.svc.*]). A peer without an entry is imported whole; hostnames left out are neither imported nor routed.
    type: dict
    default: {}
  delivery:
    description:
      - V(apply) writes the federation onto the cluster (server-side apply, status, mesh ConfigMap).
      - V(render) writes nothing to the cluster (read-only credentials suffice) but the same objects as files into O(render_dir) for Argo CD or Flux
        (one manifest per object and a C(kustomization.yaml)), plus the peers' roots as RV(trust) in C(istio-install/), whatever O(trust_mode) says.
        The C(IstioFederation) status, which GitOps tools do not apply, and the list of files written are kept in C(.meshfed-render.yaml) (commit it);
        only files listed there are rewritten or removed. The first render starts from what apply mode left.
    type: str
    default: apply
    choices: [apply, render]
  render_dir:
    description: This cluster's own directory of rendered manifests (created if missing), with O(delivery=render).
    type: path
notes:
  - Istio merges every trusted root into one bundle, so a peer's root could vouch for identities of any trust domain; C(trustDomains)
    on each entry only scopes the inbound check. Federate only with clusters whose CA you would trust for your own identities.
  - Peer roots take effect only when istiod runs with C(ISTIO_MULTIROOT_MESH=true) and proxies with
    C(PROXY_CONFIG_XDS_AGENT=true); the module checks both and warns. Ambient (ztunnel) does not support extra roots.
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

- name: Leave the federation - remove every import, the export Gateway, the IstioFederation records and peer roots
  meshfed.istio.federation:
    kubeconfig: ~/.kube/cluster-a
    local: "{{ meshfed_card }}"
    state: absent

- name: On a peer that stays, remove everything it holds of cluster-c (which leaves)
  meshfed.istio.federation:
    kubeconfig: ~/.kube/cluster-b
    local: "{{ meshfed_card }}"
    peers: "{{ federation.peers }}"
    leaving_peers: [cluster-c]
"""

RETURN = r"""
summary:
  description: What was (or in check mode would be) done; objects as C(Kind namespace/name), peers by name.
  returned: always
  type: dict
  contains:
    created:
      description: Objects created.
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
    not_in_run:
      description: Known peers kept because they were not in this run (neither gathered, unreachable nor leaving).
      type: list
      elements: str
    left:
      description: Known peers removed because they leave (every peer, with O(state=absent)).
      type: list
      elements: str
    pruned_absent:
      description: Known peers removed by O(prune_absent).
      type: list
      elements: str
    trust:
      description: Root fingerprints (with their peer) C(added) to and C(removed) from C(caCertificates), C(kept) for an unreachable peer,
        and C(reverted) (written by an earlier run, gone, restored by this one).
      type: dict
    files:
      description: Paths (relative to O(render_dir)) C(written) and C(removed), and the number C(unchanged). C(created), C(updated) and
        C(pruned) then list the objects whose manifests were written or removed.
      type: dict
      returned: with O(delivery=render)
  sample: {"created": ["ServiceEntry istio-system/meshfed-cluster-b-xyz-bar"], "unchanged": 3, "trust": {"added": ["9f2c... (cluster-b)"]}}
tls_verification:
  description: False when this cluster's API server certificate was not verified (a warning names what turned it off).
  returned: once connected, failures included
  type: bool
federation:
  description: This cluster's view of its peers, for reports (the P(meshfed.istio.federation_report#filter) filter). C(peers) lists each peer with its
    C(state) (C(in this run), C(unreachable), C(not in this run), C(leaving), C(removed)), C(trust_domain), C(roots), imported C(services) and
    C(cached_at) (when its cached metadata was written).
  returned: success
  type: dict
  sample: {"cluster": "cluster-a", "state": "present", "peers": [{"name": "cluster-b", "state": "in this run", "trust_domain": "cluster-b.local"}]}
trust:
  description: The peers' roots as install values, and whether they are live (written to C(istio-install/) with O(delivery=render)).
  returned: when trust_mode is values or delivery is render
  type: dict
  contains:
    helm_values:
      description: Values for the C(istiod) Helm chart (C(meshConfig.caCertificates)); C(istio-install/istiod-values.yaml) when rendered.
      type: dict
    istio_operator:
      description: The same as an C(IstioOperator) overlay (with C(spec.revision) for a revisioned install); C(istio-install/istio-operator.yaml).
      type: dict
    in_place:
      description: Whether the live mesh config already has every root with its trust domains.
      type: bool
    missing:
      description: Roots (fingerprint and peer) the live mesh config lacks.
      type: list
      elements: str
render_dir:
  description: The directory rendered into.
  returned: with O(delivery=render)
  type: str
api_calls:
  description: Number of API requests made, per verb.
  returned: always
  type: dict
  sample: {"get": 2, "list": 5, "apply": 3}
"""

from ansible_collections.meshfed.istio.plugins.module_utils.kube.client import AUTH_ARG_SPEC
from ansible_collections.meshfed.istio.plugins.module_utils.runners import MeshfedModule, federation_run, run_module


def argument_spec():
    return dict(
        AUTH_ARG_SPEC,
        local=dict(type="dict", required=True),
        peers=dict(type="list", elements="dict", default=[]),
        unreachable_peers=dict(type="list", elements="str", default=[]),
        refused_peers=dict(type="dict", default={}),
        istio_namespace=dict(type="str"),
        istio_api_version=dict(type="str", default="v1", choices=["v1", "v1beta1"]),
        export_gateway=dict(type="bool", default=True),
        metadata_published=dict(type="bool", default=False),
        check_local_services=dict(type="bool", default=True),
        write_concurrency=dict(type="int", default=8),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        leaving_peers=dict(type="list", elements="str", default=[]),
        members=dict(type="list", elements="str", default=[]),
        prune_absent=dict(type="bool", default=False),
        istiod_deployment=dict(type="str"),
        trust_mode=dict(type="str", default="configmap", choices=["configmap", "values"]),
        dns_address_range=dict(type="str", default="240.241.0.0/16"),
        import_namespaces=dict(type="list", elements="str", default=["*"]),
        import_hosts=dict(type="dict", default={}),
        delivery=dict(type="str", default="apply", choices=["apply", "render"]),
        render_dir=dict(type="path"),
    )


def main():
    run_module(MeshfedModule(argument_spec=argument_spec(), supports_check_mode=True), federation_run)


if __name__ == "__main__":
    main()
