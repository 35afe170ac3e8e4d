# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""A cluster card as signed federation metadata in the layout of Deckhouse's exporter (docs/design.md "Published metadata"), whose
consumer decodes fixed Go structs and ignores our ``meshfed`` key. Private keys are never printed, returned or written but to the key file."""

import contextlib
import datetime
import json
import os
import pathlib
import uuid

from ansible_collections.meshfed.istio.plugins.module_utils.common import times
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MetadataError
from ansible_collections.meshfed.istio.plugins.module_utils.pki.jose import (
    generate_private_key_pem, load_private_key, public_key_pem, sign_detached)

FORMAT_VERSION = 1
EXTENSION = "meshfed"
PUBLIC_PATH = "public/public.json"
PRIVATE_PATH = "private/federation.json"
SIGNATURE_SUFFIX = ".sig"
ALL_PATHS = (PUBLIC_PATH, PUBLIC_PATH + SIGNATURE_SUFFIX, PRIVATE_PATH, PRIVATE_PATH + SIGNATURE_SUFFIX)
DEFAULT_VALIDITY = 7 * 24 * 3600


def parse_time(value, field):
    try:
        return times.parse(value)
    except ValueError:
        raise MetadataError("%s %r is not a UTC time like 2026-01-31T12:00:00Z" % (field, value), field=field)


def default_cluster_uuid(cluster_name):
    """A stable UUID for a cluster that has none assigned (``meshfed_cluster_uuid`` overrides it)."""
    return str(uuid.uuid5(uuid.UUID("6f7c9a52-2d3e-5b8a-9c41-6d2f0e8b7a13"), cluster_name))


def _render(card, cluster_uuid, private_key, validity_times):
    """The four files of a card (planner.validate_card checked it): each document's exact bytes and its detached JWS."""
    roots, gateway = card["root_cas"], card["gateway"]
    services = sorted(card.get("public_services") or [], key=lambda s: s["hostname"])
    public = {
        "clusterUUID": cluster_uuid, "authnKeyPub": public_key_pem(private_key.public_key()), "rootCA": "".join(r["pem"].strip() + "\n" for r in roots),
        EXTENSION: dict(validity_times, version=FORMAT_VERSION, document="public", clusterName=card["name"], trustDomain=card["trust_domain"],
                        clusterDomain=card.get("cluster_domain") or card["trust_domain"], rootCAFingerprints=[r["sha256"] for r in roots]),
    }
    private = {
        "ingressGateways": [{"address": a, "port": int(gateway["port"])} for a in gateway["addresses"]],
        "publicServices": [{"hostname": s["hostname"], "ports": [{"name": p["name"], "port": int(p["number"]), "protocol": p["protocol"]}
                                                                 for p in sorted(s["ports"], key=lambda p: p["number"])]}
                           for s in services],
        EXTENSION: dict(validity_times, version=FORMAT_VERSION, document="private", clusterUUID=cluster_uuid, services={
            s["hostname"]: {"name": s["name"], "namespace": s["namespace"], "serviceAccounts": sorted(s.get("service_accounts") or [])}
            for s in services}),
    }
    files = {}
    for rel, doc in ((PUBLIC_PATH, public), (PRIVATE_PATH, private)):
        files[rel] = (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")
        files[rel + SIGNATURE_SUFFIX] = (sign_detached(private_key, files[rel]) + "\n").encode("ascii")
    return files


def plan_publication(card, cluster_uuid, private_key, existing, now=None, validity=DEFAULT_VALIDITY, renew_before=None):
    """``(files, changed)``: Ed25519 signatures are deterministic, so the ``existing`` files (path -> bytes or None) are kept while
    they are exactly what the card gives with their own times and valid for longer than ``renew_before`` (default validity/3)."""
    now = now or times.utcnow()
    renew_before = validity // 3 if renew_before is None else renew_before
    try:
        old = json.loads(existing.get(PUBLIC_PATH))[EXTENSION]
        old_times = {"issuedAt": old["issuedAt"], "expiresAt": old["expiresAt"]}
        current = (parse_time(old["expiresAt"], PUBLIC_PATH + " expiresAt") - now).total_seconds() > renew_before
    except (MetadataError, ValueError, KeyError, TypeError):
        current = False
    if current and _render(card, cluster_uuid, private_key, old_times) == {rel: existing.get(rel) for rel in ALL_PATHS}:
        return {rel: existing[rel] for rel in ALL_PATHS}, False
    validity_times = {"issuedAt": times.iso(now), "expiresAt": times.iso(now + datetime.timedelta(seconds=validity))}
    return _render(card, cluster_uuid, private_key, validity_times), True


def read_published(dest):
    """The four published files under ``dest`` as {relative path: bytes or None}."""
    result = dict.fromkeys(ALL_PATHS)
    for rel in ALL_PATHS:
        with contextlib.suppress(OSError):
            result[rel] = pathlib.Path(dest, rel).read_bytes()
    return result


def write_published(dest, files):
    """Write each file atomically (temporary file + rename), mode 0644: the documents are public."""
    for rel, data in files.items():
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        tmp = "%s.meshfed-%d" % (path, os.getpid())
        pathlib.Path(tmp).write_bytes(data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)


def read_key(path, field, generate=False, dry_run=False):
    """``(key, generated)`` from an Ed25519 key file; with ``generate`` a missing file is created (0600). A file readable by
    others is refused: it is a private key. Nothing about the key is ever echoed."""
    if not os.path.exists(path):
        if not generate:
            raise MetadataError("%s does not exist (set meshfed_metadata_generate_key: true to create it)" % path, "config", field=field)
        pem = generate_private_key_pem()
        if not dry_run:
            os.makedirs(os.path.dirname(os.path.abspath(path)), 0o700, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(pem)
        return load_private_key(pem, field), True
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise MetadataError("%s is readable by group or others (mode %o); chmod 600 it" % (path, mode), "config", field=field)
    try:
        return load_private_key(pathlib.Path(path).read_bytes(), "%s %s" % (field, path)), False
    except OSError as exc:
        raise MetadataError("cannot read %s (%s)" % (path, exc.strerror), "config", field=field)
