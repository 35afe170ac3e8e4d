#!/usr/bin/python
# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)

DOCUMENTATION = r"""
module: cluster_info
short_description: Gather an Istio cluster's federation facts (its "cluster card")
version_added: 1.0.0
description:
  - Reads, without changing anything, what peers need to federate with this cluster's Istio mesh - the trust
    domain, the root CA certificate(s), the east-west gateway's addresses and port, and the Services marked public.
  - The root CA comes from the ConfigMap C(istio-ca-root-cert) (key C(root-cert.pem)). The plug-in CA Secret
    C(cacerts) and any private key are never read; a root bundle that contains a private key is refused.
author: meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes.info_module
  - meshfed.istio.auth
options:
  cluster:
    description: Name of the cluster, a lowercase DNS label (usually the inventory hostname); in every message and the card's C(name).
    type: str
    required: true
  istio_namespace:
    description: Namespace of istiod, holding the mesh ConfigMap (C(istio) or C(istio-<revision>)) and C(istio-ca-root-cert).
    type: str
    default: istio-system
  trust_domain:
    description: Override the trust domain read from the mesh config's C(trustDomain).
    type: str
  cluster_domain:
    description: DNS domain of this cluster's Services (C(<svc>.<ns>.svc.<cluster_domain>)), the hostnames the east-west gateway knows. Defaults to
      the C(--domain) of the revision's istiod (Helm C(global.proxy.clusterDomain), default C(cluster.local)); override only when its Deployment
      cannot tell.
    type: str
  federation_domain:
    description:
      - Export the public Services under this domain instead of O(cluster_domain) (e.g. C(bar.xyz.svc.cluster-b.local)
        on a cluster whose DNS domain is C(cluster.local)), so that exported hostnames are unique across the federation.
      - The exporting side then also gets, per public Service, a C(ServiceEntry) with the alias hostname selecting the
        Service's pods, so the gateway routes the alias to them. Services without a selector are skipped with a warning.
    type: str
  revision:
    description:
      - Istio revision whose istiod should trust the peers (ConfigMap C(istio-<revision>), Deployment
        C(istiod-<revision>)); C(default) is ConfigMap C(istio).
      - Without it, the only mesh ConfigMap of O(istio_namespace) is used; with several, the module fails listing them and which istiod reads each.
    type: str
  gateway_service:
    description: Name of the east-west gateway Service.
    type: str
    default: istio-eastwestgateway
  gateway_namespace:
    description: Namespace of the gateway Service. Defaults to O(istio_namespace).
    type: str
  gateway_addresses:
    description: Advertised gateway addresses (IPs or hostnames) instead of what the Service reports, e.g. behind NAT.
    type: list
    elements: str
    default: []
  gateway_port:
    description: The gateway Service port for mTLS passthrough. Defaults to the port named C(tls), else 15443.
    type: int
  gateway_selector:
    description: Pod labels of the gateway, used only when the Service has no selector.
    type: dict
  public_labels:
    description: Labels whose presence (any value) marks a Service as public.
    type: list
    elements: str
    default: [federation.meshfed.io/public-service, federation.istio.deckhouse.io/public-service]
  ca_expiry_warning_days:
    description: A root CA certificate expiring within this many days gives a warning.
    type: int
    default: 30
notes:
  - A port's protocol is the one Istio derives for the Service port - its C(appProtocol), else its name prefix
    (C(http), C(http2), C(grpc), C(grpc-web), C(https), C(tls), C(tcp), ...), else empty so that Istio sniffs it; an
    unnamed port is named C(port-<number>). UDP and SCTP ports and C(ExternalName) Services are skipped with a warning.
"""

EXAMPLES = r"""
- name: Gather the card of the cluster this inventory host stands for
  meshfed.istio.cluster_info:
    cluster: "{{ inventory_hostname }}"
    kubeconfig: "{{ meshfed_kubeconfig }}"
  register: facts

- name: Gateway behind NAT, exported Services labelled the Deckhouse way only
  meshfed.istio.cluster_info:
    cluster: cluster-b
    gateway_addresses: [eastwest.cluster-b.example.com]
    public_labels: [federation.istio.deckhouse.io/public-service]
"""

RETURN = r"""
card:
  description: The cluster card, input of M(meshfed.istio.federation) on every other cluster. Also holds C(federation_domain), C(revision),
    C(mesh_configmap), C(istiod) (its C(deployment) and C(scope_gateway_to_namespace)) and C(dns_capture) (C(ISTIO_META_DNS_CAPTURE)).
  returned: success
  type: dict
  contains:
    name:
      description: The cluster name.
      type: str
    trust_domain:
      description: The mesh trust domain.
      type: str
      sample: cluster-b.local
    cluster_domain:
      description: DNS domain of the cluster's Services (istiod's C(--domain), or O(cluster_domain)).
      type: str
      sample: cluster.local
    istio_namespace:
      description: Namespace of istiod.
      type: str
    root_cas:
      description: Root CA certificates (public), with SHA-256 fingerprint, subject and expiry.
      type: list
      elements: dict
      sample: [{"pem": "-----BEGIN CERTIFICATE-----...", "sha256": "9f2c...", "subject": "CN=Root CA", "not_after": "2036-11-24T00:00:00Z"}]
    gateway:
      description: The east-west gateway as peers reach it (addresses, C(STATIC) or C(DNS) resolution, ports, source, Service, pods).
      type: dict
      sample: {"addresses": ["192.0.2.11"], "resolution": "STATIC", "port": 15443, "target_port": 15443, "source": "LoadBalancer"}
    public_services:
      description: Exported Services with their hostnames, ports and service accounts.
      type: list
      elements: dict
      sample: [{"name": "bar", "namespace": "xyz", "hostname": "bar.xyz.svc.cluster-b.local", "ports": [{"name": "http", "number": 8080}]}]
    warnings:
      description: Problems that did not stop gathering (skipped ports or Services, expiring roots).
      type: list
      elements: str
accepted_metadata:
  description: Issue time of the metadata last accepted from each metadata peer (C(status.metadataCache.public.issuedAt) of this cluster's
    C(IstioFederation) objects); empty before the CRD is installed. The role passes the latest to M(meshfed.istio.peer_metadata) as
    O(meshfed.istio.peer_metadata#module:not_before), so a replayed older copy fails that peer's task.
  returned: success
  type: dict
  sample: {"cluster-b": "2026-11-26T02:11:47Z"}
api_calls:
  description: Number of API requests made, per verb.
  returned: always
  type: dict
  sample: {"get": 3, "list": 2}
tls_verification:
  description: False when the API server's TLS certificate was not verified (a warning names what turned it off).
  returned: once connected
  type: bool
"""

from ansible_collections.meshfed.istio.plugins.module_utils.gather.facts import DEFAULT_PUBLIC_LABELS
from ansible_collections.meshfed.istio.plugins.module_utils.kube.client import AUTH_ARG_SPEC
from ansible_collections.meshfed.istio.plugins.module_utils.runners import FactsRun, MeshfedModule, run_module


def argument_spec():
    return dict(
        AUTH_ARG_SPEC,
        cluster=dict(type="str", required=True),
        istio_namespace=dict(type="str", default="istio-system"),
        trust_domain=dict(type="str"),
        cluster_domain=dict(type="str"),
        federation_domain=dict(type="str"),
        revision=dict(type="str"),
        gateway_service=dict(type="str", default="istio-eastwestgateway"),
        gateway_namespace=dict(type="str"),
        gateway_addresses=dict(type="list", elements="str", default=[]),
        gateway_port=dict(type="int"),
        gateway_selector=dict(type="dict"),
        public_labels=dict(type="list", elements="str", default=list(DEFAULT_PUBLIC_LABELS)),
        ca_expiry_warning_days=dict(type="int", default=30),
    )


def main():
    run_module(MeshfedModule(argument_spec=argument_spec(), supports_check_mode=True), FactsRun)


if __name__ == "__main__":
    main()
