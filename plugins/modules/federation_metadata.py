#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: federation_metadata
short_description: Publish a cluster's signed federation metadata to a directory
version_added: 0.2.0
description:
  - Writes the federation metadata of one cluster, built from its card (as returned by
    M(meshfed.istio.cluster_facts)), into O(dest), in the layout Deckhouse's metadata exporter serves
    C(public/public.json) (C(clusterUUID), C(authnKeyPub), C(rootCA)) and C(private/federation.json)
    (C(ingressGateways), C(publicServices)). A peer fetches them without any credential to this cluster
    (serve O(dest) over HTTPS, from object storage or from a Git repository).
  - What this collection needs beyond Deckhouse's fields (trust domain, cluster domain, every root of
    a rotation, per-service namespace, name and service accounts, issue time and expiry) is in a
    C(meshfed) key that Deckhouse consumers ignore.
  - Each document gets a detached Ed25519 signature next to it (C(<file>.sig), a JWS with detached
    payload) made with the cluster's key O(key_file) or O(key). The public half is published as
    C(authnKeyPub); peers pin it (or this cluster's root fingerprints) out of band.
  - Unchanged content is not rewritten until the documents are due for renewal (O(renew_before)), so
    a rerun reports no change.
author:
  - meshfed.istio contributors (@meshfed)
attributes:
  check_mode:
    support: full
    description: Reports whether the documents would be (re)written; writes nothing.
  diff_mode:
    support: full
    description: Shows the documents before and after (no key material).
options:
  card:
    description: The cluster's card (M(meshfed.istio.cluster_facts) C(card)).
    type: dict
    required: true
  dest:
    description: Directory to write C(public/) and C(private/) into; created if missing.
    type: path
    required: true
  key_file:
    description:
      - Path of the cluster's Ed25519 private key (PKCS#8 PEM). Also used to authenticate to Deckhouse
        peers. Never printed or returned.
      - One of O(key_file) and O(key) is required.
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
  - Whoever can write O(dest) cannot forge metadata without the key, but can withhold it or serve an
    older, still unexpired copy; keep O(validity) short enough for your rotation needs.
"""

EXAMPLES = r"""
- name: Gather the card
  meshfed.istio.cluster_facts:
    cluster: cluster-a
    kubeconfig: ~/.kube/cluster-a
  register: facts

- name: Publish cluster-a's metadata for the peers (served over HTTPS from /srv/meshfed/cluster-a)
  meshfed.istio.federation_metadata:
    card: "{{ facts.card }}"
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

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshfed.istio.plugins.module_utils import metadata as md


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _write(path, data, mode):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".meshfed-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_key(module, who):
    """The private key from key/key_file (creating key_file if asked). Never echoes key material."""
    params = module.params
    if params["key"]:
        return md.load_private_key(params["key"], who, "key")
    path = params["key_file"]
    if not os.path.exists(path):
        if not params["generate_key"]:
            raise md.MetadataError("%s: key_file %s does not exist (set generate_key: true to create it)"
                                   % (who, path), "config")
        if module.check_mode:
            return md.load_private_key(md.generate_private_key_pem(), who)
        pem = md.generate_private_key_pem()
        old = os.umask(0o077)
        try:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(pem)
        finally:
            os.umask(old)
        module.generated_key = True
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        module.warn("%s: key_file %s is readable by others (mode %o); chmod 600 it" % (who, path, mode))
    with open(path, "rb") as handle:
        return md.load_private_key(handle.read(), who, "key_file %s" % path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            card=dict(type="dict", required=True),
            dest=dict(type="path", required=True),
            key_file=dict(type="path", no_log=False),
            key=dict(type="str", no_log=True),
            generate_key=dict(type="bool", default=False),
            cluster_uuid=dict(type="str"),
            validity=dict(type="int", default=md.DEFAULT_VALIDITY),
            renew_before=dict(type="int"),
        ),
        required_one_of=[("key_file", "key")],
        mutually_exclusive=[("key_file", "key")],
        supports_check_mode=True,
    )
    if not md.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=md.CRYPTOGRAPHY_IMPORT_ERROR)
    params = module.params
    card = params["card"]
    who = card.get("name") or "cluster"
    module.generated_key = False
    if params["validity"] < 120:
        module.fail_json(msg="%s: validity %d is shorter than two minutes (field: validity)" % (who, params["validity"]))
    try:
        key = load_key(module, who)
        cluster_uuid = params["cluster_uuid"] or md.default_cluster_uuid(card["name"])
        dest = params["dest"]
        existing = dict((rel, _read(os.path.join(dest, rel))) for rel in md.all_paths())
        files, changed = md.plan_publication(card, cluster_uuid, key, existing, validity=params["validity"],
                                             renew_before=params["renew_before"])
    except md.MetadataError as exc:
        module.fail_json(msg=str(exc), reason=exc.reason)
    except KeyError as exc:
        module.fail_json(msg="%s: card lacks field %s" % (who, exc), reason="config")
    diff = {}
    if changed and module._diff:
        def text(rel, source):
            body = source.get(rel)
            return body.decode("utf-8", "replace") if body else ""
        diff = {"before": "".join(text(r, existing) for r in (md.PUBLIC_PATH, md.PRIVATE_PATH)),
                "after": "".join(text(r, files) for r in (md.PUBLIC_PATH, md.PRIVATE_PATH)),
                "before_header": dest, "after_header": dest}
    if changed and not module.check_mode:
        for rel in md.all_paths():
            _write(os.path.join(dest, rel), files[rel], 0o644)
    public = json.loads(files[md.PUBLIC_PATH].decode("utf-8"))
    result = dict(
        changed=changed or module.generated_key,
        cluster_uuid=cluster_uuid,
        signer=md.key_fingerprint(key.public_key()),
        public_key=md.public_key_pem(key.public_key()),
        files=[os.path.join(dest, rel) for rel in md.all_paths()],
        expires_at=public[md.EXTENSION]["expiresAt"],
    )
    if diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
