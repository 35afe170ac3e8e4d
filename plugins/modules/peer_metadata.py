#!/usr/bin/python
# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)

DOCUMENTATION = r"""
module: peer_metadata
short_description: Fetch and verify a peer cluster's federation metadata (no credentials to the peer)
version_added: 1.0.0
description:
  - Reads a peer's published federation metadata from an HTTPS URL or a local path, verifies it and returns it as a card like
    M(meshfed.istio.cluster_info)'s, for M(meshfed.istio.federation). A failure names the peer and the reason (RV(reason)).
  - O(protocol=meshfed) reads documents published by M(meshfed.istio.federation_metadata) and requires their detached
    Ed25519 signatures, a signer pinned by O(signer_key) and/or roots pinned by O(root_sha256), and unexpired documents.
  - O(protocol=deckhouse) reads a Deckhouse metadata exporter, requesting the private part with a bearer JWT signed with this
    side's key. Deckhouse does not sign its documents, so integrity rests on verified TLS and the pins.
author: meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes.info_module
options:
  cluster:
    description: Name of the peer (inventory name); becomes the card's C(name).
    type: str
    required: true
  url:
    description: HTTPS base URL of the metadata (Deckhouse's C(metadataEndpoint), e.g. C(https://istio.example.com/metadata/)).
    type: str
  path:
    description: Local directory holding C(public/) and C(private/) (e.g. a checked-out Git repository).
    type: path
  protocol:
    description: V(meshfed) for signed documents, V(deckhouse) for a Deckhouse metadata exporter.
    type: str
    choices: [meshfed, deckhouse]
    default: meshfed
  signer_key:
    description: The peer's Ed25519 public key (PEM) or its fingerprint C(sha256:<hex>), obtained out of band.
    type: str
  root_sha256:
    description: SHA-256 fingerprints of the peer's roots, obtained out of band; every root in the metadata, a rotation's new one too, must be pinned.
    type: list
    elements: str
    default: []
  ca_cert:
    description: CA certificate (PEM text or a file path) that alone verifies the HTTPS server; default the system CAs.
    type: str
  validate_certs:
    description: Verify the HTTPS server's certificate. Turning this off lets anyone on the path serve the metadata.
    type: bool
    default: true
  trust_domain:
    description: The peer's trust domain; required for a Deckhouse peer, checked against signed metadata otherwise.
    type: str
  client_uuid:
    description: This side's cluster UUID (the JWT's C(sub)); defaults to the UUID derived from O(client_name).
    type: str
  client_name:
    description: Name of this side's cluster (derives O(client_uuid) when not given).
    type: str
  client_key_file:
    description: This side's Ed25519 private key file (signs the JWT). Never printed.
    type: path
  client_key:
    description: This side's Ed25519 private key (PEM), e.g. from Ansible Vault. Never printed.
    type: str
  not_before:
    description: Refuse documents issued before this time (C(YYYY-MM-DDTHH:MM:SSZ)), e.g. the last accepted issue time.
    type: str
  timeout:
    description: Seconds to wait for each HTTPS request.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Fetch cluster-b's metadata, trusted by its signing key
  meshfed.istio.peer_metadata:
    cluster: cluster-b
    url: https://meshfed.b.example.com/cluster-b/
    signer_key: sha256:5b0c0e3a...
    client_uuid: "{{ cluster_a_uuid }}"
    client_key_file: ~/.meshfed/cluster-a.key
  register: peer

- name: Fetch a Deckhouse cluster's metadata, trusted by its root
  meshfed.istio.peer_metadata:
    cluster: d8-prod
    url: https://istio.d8.example.com/metadata/
    protocol: deckhouse
    trust_domain: d8.example
    root_sha256: [9f2c...]
    client_uuid: "{{ cluster_a_uuid }}"
    client_key_file: ~/.meshfed/cluster-a.key
"""

RETURN = r"""
card:
  description: The peer as a card (see M(meshfed.istio.cluster_info)), plus C(metadata) (protocol, location, C(clusterUUID),
    signer fingerprint, issue/expiry/fetch times, the coordinates to record in the IstioFederation, and the public document).
  returned: success
  type: dict
reason:
  description: Why the metadata was refused (fetch, tls, malformed, signature, unknown_signer, untrusted_root,
    expired, not_yet_valid, rollback, config, unauthorized).
  returned: failure
  type: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils.metadata.fetch import PROTOCOLS
from ansible_collections.meshfed.istio.plugins.module_utils.runners import MeshfedModule, PeerMetadataRun, run_module


def argument_spec():
    return dict(
        cluster=dict(type="str", required=True),
        url=dict(type="str"),
        path=dict(type="path"),
        protocol=dict(type="str", choices=list(PROTOCOLS), default="meshfed"),
        signer_key=dict(type="str", no_log=False),
        root_sha256=dict(type="list", elements="str", default=[]),
        ca_cert=dict(type="str"),
        validate_certs=dict(type="bool", default=True),
        trust_domain=dict(type="str"),
        client_uuid=dict(type="str"),
        client_name=dict(type="str"),
        client_key_file=dict(type="path", no_log=False),
        client_key=dict(type="str", no_log=True),
        not_before=dict(type="str"),
        timeout=dict(type="int", default=10),
    )


def main():
    run_module(MeshfedModule(argument_spec=argument_spec(), required_one_of=[("url", "path")],
                             mutually_exclusive=[("url", "path"), ("client_key_file", "client_key")],
                             supports_check_mode=True), PeerMetadataRun)


if __name__ == "__main__":
    main()
