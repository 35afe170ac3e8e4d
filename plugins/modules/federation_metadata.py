#!/usr/bin/python
# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)

DOCUMENTATION = r"""
module: federation_metadata
short_description: Publish a cluster's signed federation metadata to a directory
version_added: 1.0.0
description:
  - Writes one cluster's federation metadata, built from its card (M(meshfed.istio.cluster_info)), into O(dest) in the
    layout of Deckhouse's metadata exporter (C(public/public.json), C(private/federation.json)) for peers to fetch without
    any credential to this cluster (serve O(dest) over HTTPS, from object storage or from a Git repository).
  - What this collection needs beyond Deckhouse's fields is in a C(meshfed) key Deckhouse ignores.
  - Each document gets a detached Ed25519 signature (C(<file>.sig), a JWS with detached payload) made with O(key_file)
    or O(key). The public half is published as C(authnKeyPub); peers pin it (or the root fingerprints) out of band.
  - Unchanged content is not rewritten until due for renewal (O(renew_before)), so a rerun reports no change.
author: meshfed.istio contributors (@meshfed)
attributes:
  check_mode:
    support: full
    description: Reports whether the documents would be (re)written; writes nothing.
  diff_mode:
    support: full
    description: Shows the documents before and after (no key material).
options:
  card:
    description: The cluster's card (M(meshfed.istio.cluster_info) C(card)).
    type: dict
    required: true
  dest:
    description: Directory to write C(public/) and C(private/) into; created if missing.
    type: path
    required: true
  key_file:
    description: Path of the cluster's Ed25519 private key (PKCS#8 PEM), also used to authenticate to Deckhouse peers.
      Exactly one of O(key_file) and O(key) is required. Never printed or returned.
    type: path
  key:
    description: The private key itself (PEM), e.g. from Ansible Vault. Never printed or returned.
    type: str
  generate_key:
    description: Create O(key_file) (mode 0600) with a new key when it does not exist.
    type: bool
    default: false
  cluster_uuid:
    description: The cluster's UUID (C(clusterUUID)); defaults to a UUID derived from the card's name.
    type: str
  validity:
    description: Seconds the documents are valid for after signing.
    type: int
    default: 604800
  renew_before:
    description: Re-sign unchanged documents once they expire in less than this many seconds (default a third of O(validity)).
    type: int
notes:
  - Whoever can write O(dest) cannot forge metadata without the key, but can withhold it or serve an older, still
    unexpired copy; keep O(validity) short enough for your rotation needs.
"""

EXAMPLES = r"""
- name: Publish cluster-a's metadata for the peers (served over HTTPS from /srv/meshfed/cluster-a)
  meshfed.istio.federation_metadata:
    card: "{{ facts.card }}"  # registered from meshfed.istio.cluster_info
    dest: /srv/meshfed/cluster-a
    key_file: ~/.meshfed/cluster-a.key
    generate_key: true
"""

RETURN = r"""
cluster_uuid:
  description: The C(clusterUUID) published.
  returned: success
  type: str
signer:
  description: SHA-256 fingerprint of the public key that signs the documents; give it to peers out of band.
  returned: success
  type: str
  sample: sha256:5b0c...
public_key:
  description: The public key (PEM) that signs the documents (C(authnKeyPub)).
  returned: success
  type: str
files:
  description: Paths of the files written or kept.
  returned: success
  type: list
  elements: str
expires_at:
  description: Expiry of the documents now in O(dest).
  returned: success
  type: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils.metadata.publish import DEFAULT_VALIDITY
from ansible_collections.meshfed.istio.plugins.module_utils.runners import MeshfedModule, PublishRun, run_module


def argument_spec():
    return dict(
        card=dict(type="dict", required=True),
        dest=dict(type="path", required=True),
        key_file=dict(type="path", no_log=False),
        key=dict(type="str", no_log=True),
        generate_key=dict(type="bool", default=False),
        cluster_uuid=dict(type="str"),
        validity=dict(type="int", default=DEFAULT_VALIDITY),
        renew_before=dict(type="int"),
    )


def main():
    run_module(MeshfedModule(argument_spec=argument_spec(), required_one_of=[("key_file", "key")],
                             mutually_exclusive=[("key_file", "key")], supports_check_mode=True), PublishRun)


if __name__ == "__main__":
    main()
