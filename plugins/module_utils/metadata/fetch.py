# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Fetch a peer's published metadata (publish.py's layout), verify it and turn it into a card. Our peers' documents
carry a detached JWS checked against the pinned signer; Deckhouse exporters do not sign, so for them (``protocol: deckhouse``)
integrity rests on TLS plus the pins, and their private document is fetched with the Deckhouse JWT (pki/jose.py)."""

import datetime
import hashlib
import json
import os
import pathlib
import re
import ssl
from urllib.error import HTTPError, URLError
from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import CertError, MetadataError, about, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import iso, utcnow
from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import is_ip, port_protocol, service_host, valid_port
from ansible_collections.meshfed.istio.plugins.module_utils.metadata.publish import (
    EXTENSION, FORMAT_VERSION, PRIVATE_PATH, PUBLIC_PATH, SIGNATURE_SUFFIX, parse_time)
from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.pki.jose import key_fingerprint, load_public_key, make_jwt, verify_detached

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
PROTOCOLS = ("meshfed", "deckhouse")
CARD_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS")


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # pylint: disable=too-many-arguments
        raise HTTPError(req.full_url, code, "redirect to %s refused (metadata is never fetched through a redirect)" % newurl, headers, fp)


class Fetcher:
    """Reads metadata files from an ``https://`` base URL or a local directory (``file://`` or a path). TLS is verified against
    the system CAs, or only ``ca_pem`` (the peer's CA, pinned); ``validate_certs=False`` is reported. No redirects, at most MAX_DOCUMENT_BYTES."""

    def __init__(self, location, ca_pem=None, validate_certs=True, timeout=10):
        self.location, self.timeout, self.warnings = (location or "").strip(), timeout, []
        scheme, sep, path = self.location.partition("://")
        scheme, path = (scheme.lower(), path) if sep else ("", self.location)
        if not self.location:
            raise MetadataError("no metadata location (meshfed_metadata_url or meshfed_metadata_path)", "config", field="meshfed_metadata_url")
        if scheme == "https":
            self.kind, self.base = "https", self.location.rstrip("/") + "/"
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem or None)
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                self.warnings.append("TLS certificate of %s is NOT verified (validate_certs=false); anyone on the path can serve this "
                                     "peer's metadata" % self.location)
            self.opener = build_opener(HTTPSHandler(context=context), _NoRedirect())
        elif scheme in ("", "file"):
            self.kind, self.base = "file", os.path.join(os.path.abspath(os.path.expanduser(path)), "")
        else:
            raise MetadataError("metadata location %s must be https:// or a local path (plain %s:// would let anyone on the path "
                                "change it)" % (self.location, scheme), "config", field="meshfed_metadata_url")

    def get(self, rel, bearer=None, optional=False):
        """Bytes of ``rel``; None when ``optional`` and it does not exist."""
        where = self.base + rel
        if self.kind == "https":
            data = self._read_https(where, bearer, optional)
        else:
            try:
                with open(where, "rb") as handle:
                    data = handle.read(MAX_DOCUMENT_BYTES + 1)
            except OSError as exc:
                if optional and not os.path.exists(where):
                    return None
                raise MetadataError("cannot read %s: %s" % (where, exc.strerror or exc), "fetch")
        if data is not None and len(data) > MAX_DOCUMENT_BYTES:
            raise MetadataError("%s is larger than %d bytes; refused" % (where, MAX_DOCUMENT_BYTES))
        return data

    def _read_https(self, where, bearer, optional):
        headers = {"Accept": "application/json", "User-Agent": "meshfed.istio"}
        if bearer:
            headers["Authorization"] = "Bearer " + bearer
        try:
            with self.opener.open(Request(where, headers=headers), timeout=self.timeout) as response:
                return response.read(MAX_DOCUMENT_BYTES + 1)
        except HTTPError as exc:
            if optional and exc.code == 404:
                return None
            try:
                body = exc.read(300).decode("utf-8", "replace").strip()
            except (OSError, AttributeError):
                body = ""
            raise MetadataError("GET %s: HTTP %s%s" % (where, exc.code, (": " + body) if body else (" " + str(exc.reason))),
                                "unauthorized" if exc.code in (401, 403) else "fetch", status=exc.code)
        except OSError as exc:   # URLError, ssl.SSLError, timeouts
            inner = exc.reason if isinstance(exc, URLError) else exc
            if isinstance(inner, ssl.SSLCertVerificationError):   # also ssl.CertificateError, its alias
                raise MetadataError("TLS certificate of %s not trusted: %s (pin the peer's CA with meshfed_metadata_ca)"
                                    % (where, getattr(inner, "verify_message", None) or inner), "tls", field="meshfed_metadata_ca")
            if isinstance(inner, ssl.SSLError):
                raise MetadataError("TLS handshake with %s failed: %s" % (where, inner), "tls")
            raise MetadataError("GET %s failed: %s" % (where, inner), "fetch")


def pem_or_file(value, field):
    """PEM text given inline, or read from the file ``value`` names."""
    if not value or "-----BEGIN" in value:
        return value or None
    try:
        return pathlib.Path(value).expanduser().read_text()
    except OSError as exc:
        raise MetadataError("%s is neither PEM nor a readable file (%s)" % (value, exc.strerror), "config", field=field)


def _fingerprint_text(value):
    """Lowercase hex of a SHA-256 pin written as hex, ``sha256:<hex>`` or ``AA:BB:…``; None if it is not one."""
    text = re.sub(r"^sha256:|:", "", str(value).strip().lower())
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


class PeerSpec:
    """Where a peer's metadata is and what it is trusted by (a metadata peer's inventory host vars)."""

    def __init__(self, name, location, protocol="meshfed", signer_key=None, root_sha256=None, ca_pem=None, validate_certs=True, trust_domain=None):
        self.name, self.location, self.protocol = name, location, protocol
        self.ca_pem, self.validate_certs, self.trust_domain = ca_pem, validate_certs, trust_domain
        self.pinned_fingerprint, self.root_pins = None, set()
        with about(name):
            if signer_key:  # the pinned signer: sha256:<hex>, or its public key PEM
                pin = _fingerprint_text(signer_key)
                self.pinned_fingerprint = "sha256:" + pin if pin else key_fingerprint(load_public_key(signer_key.strip(), "meshfed_metadata_signer_key"))
            for value in root_sha256 or []:
                if not _fingerprint_text(value):
                    raise MetadataError("meshfed_metadata_root_sha256: %r is not a SHA-256 hex digest (64 hex digits, optionally "
                                        "prefixed sha256:)" % (value,), "config", field="meshfed_metadata_root_sha256")
                self.root_pins.add(_fingerprint_text(value))
            if not self.pinned_fingerprint and not self.root_pins:
                raise MetadataError("no trust anchor for metadata peer; give meshfed_metadata_signer_key (the peer's Ed25519 public key "
                                    "or sha256:<fingerprint>) and/or meshfed_metadata_root_sha256 (its root CA fingerprints), obtained "
                                    "out of band", "config", field="meshfed_metadata_signer_key")


def _json(data, what):
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError as exc:   # UnicodeDecodeError too
        raise MetadataError("%s is not JSON (%s)" % (what, exc))
    if not isinstance(doc, dict):
        raise MetadataError("%s is not a JSON object" % what)
    return doc


def _signed(fetcher, key, rel, raw, document):
    """The ``meshfed`` extension of ``rel`` (bytes ``raw``) once its detached signature verifies with ``key``."""
    sig = fetcher.get(rel + SIGNATURE_SUFFIX, optional=True)
    if sig is None:
        raise MetadataError("%s has no signature (%s%s); unsigned metadata is refused (a Deckhouse peer needs "
                            "meshfed_metadata_protocol: deckhouse)" % (rel, rel, SIGNATURE_SUFFIX), "signature")
    verify_detached(key, raw, sig.decode("ascii", "replace"), rel)
    ext = _json(raw, rel).get(EXTENSION)
    if not isinstance(ext, dict) or ext.get("document") != document:
        raise MetadataError("%s lacks the meshfed extension" % rel)
    if ext.get("version") != FORMAT_VERSION:
        raise MetadataError("%s has format version %r; this collection reads %d" % (rel, ext.get("version"), FORMAT_VERSION))
    return ext


def _check_validity(ext, what, now, not_before=None):
    issued = parse_time(ext.get("issuedAt"), what + " meshfed.issuedAt")
    expires = parse_time(ext.get("expiresAt"), what + " meshfed.expiresAt")
    if issued - now > datetime.timedelta(seconds=300):  # clock skew
        raise MetadataError("%s is issued in the future (%s); check the publisher's clock" % (what, iso(issued)), "not_yet_valid")
    if expires <= now:
        raise MetadataError("%s expired at %s; the peer must republish its metadata" % (what, iso(expires)), "expired")
    if not_before is not None and issued < not_before:
        raise MetadataError("%s was issued at %s, before the last metadata accepted (%s): an older copy is being replayed; refused"
                            % (what, iso(issued), iso(not_before)), "rollback")
    return issued, expires


def _public(spec, fetcher, now, not_before):
    """The verified public document: ``(doc, extension, key, roots, warnings)``."""
    raw = fetcher.get(PUBLIC_PATH)
    doc = _json(raw, PUBLIC_PATH)
    for field in ("clusterUUID", "authnKeyPub", "rootCA"):
        if not isinstance(doc.get(field), str) or not doc.get(field):
            raise MetadataError("%s has no %s" % (PUBLIC_PATH, field))
    key = load_public_key(doc["authnKeyPub"], PUBLIC_PATH + " authnKeyPub")
    if spec.pinned_fingerprint and key_fingerprint(key) != spec.pinned_fingerprint:
        raise MetadataError("metadata is signed by an unknown key %s; the pinned signer is %s (meshfed_metadata_signer_key)"
                            % (key_fingerprint(key), spec.pinned_fingerprint), "unknown_signer", field="meshfed_metadata_signer_key")
    ext = {}
    if spec.protocol == "meshfed":
        ext = _signed(fetcher, key, PUBLIC_PATH, raw, "public")  # key: the pinned signer, when one is pinned
        ext["_times"] = [iso(t) for t in _check_validity(ext, PUBLIC_PATH, now, not_before)]
    try:
        roots, warnings = parse_root_bundle(doc["rootCA"], None, PUBLIC_PATH + " rootCA", now=now)
    except CertError as exc:
        raise MetadataError(exc.message, "malformed", field=exc.field)
    have = [r["sha256"] for r in roots]
    unpinned = [fp for fp in have if fp not in spec.root_pins]
    if spec.root_pins and len(unpinned) == len(have):
        raise MetadataError("none of the metadata's root certificates (%s) matches a pinned fingerprint (meshfed_metadata_root_sha256)"
                            % ", ".join(have), "untrusted_root", field="meshfed_metadata_root_sha256")
    if spec.root_pins and unpinned:
        raise MetadataError("metadata carries root certificate(s) that are not pinned: %s; pin them (meshfed_metadata_root_sha256) to "
                            "accept a rotation" % ", ".join(unpinned), "untrusted_root", field="meshfed_metadata_root_sha256")
    if isinstance(ext.get("rootCAFingerprints"), list) and sorted(ext["rootCAFingerprints"]) != sorted(have):
        raise MetadataError("%s rootCA does not match its rootCAFingerprints" % PUBLIC_PATH)
    return doc, ext, key, roots, warnings


def _service(item, extras, warnings):
    """One card ``public_services`` entry from a ``publicServices`` item (None when unusable)."""
    if not isinstance(item, dict) or not isinstance(item.get("hostname"), str):
        raise MetadataError("%s publicServices has an entry without hostname" % PRIVATE_PATH)
    host, extra = item["hostname"].lower(), (extras or {}).get(item["hostname"]) or {}
    name, namespace, parts = extra.get("name"), extra.get("namespace"), service_host(host)
    if not (name and namespace) and not parts:
        warnings.append("public service %s is not <service>.<namespace>.svc.<domain>; skipped" % host)
        return None
    ports = []
    for port in item.get("ports") or []:
        if not isinstance(port, dict) or not isinstance(port.get("port"), int) or isinstance(port.get("port"), bool):
            raise MetadataError("public service %s has a port without a numeric port" % host)
        if not port.get("name"):
            warnings.append("public service %s port %s has no name; skipped" % (host, port["port"]))
        else:
            protocol = port["protocol"] if port.get("protocol") in CARD_PROTOCOLS else port_protocol(0, str(port["name"]))
            ports.append({"name": str(port["name"]), "number": port["port"], "protocol": protocol})
    if not ports:
        warnings.append("public service %s has no usable port; skipped" % host)
        return None
    return {"name": name or parts[0], "namespace": namespace or parts[1], "hostname": host, "ports": sorted(ports, key=lambda p: p["number"]),
            "service_accounts": sorted(set(str(a) for a in extra.get("serviceAccounts") or []))}


def _gateway(private, warnings):
    gateways = private.get("ingressGateways")
    if not isinstance(gateways, list) or not gateways:
        raise MetadataError("%s has no ingressGateways; the peer's gateway cannot be reached" % PRIVATE_PATH)
    for gw in gateways:
        if not (isinstance(gw, dict) and gw.get("address") and isinstance(gw["address"], str) and valid_port(gw.get("port"))):
            raise MetadataError("%s ingressGateways entry %r needs an address and a port" % (PRIVATE_PATH, gw))
    port = gateways[0]["port"]
    if any(gw["port"] != port for gw in gateways):
        warnings.append("ingressGateways use several ports; only those on port %d are used" % port)
    addresses = list(dict.fromkeys(gw["address"] for gw in gateways if gw["port"] == port))
    ips = [a for a in addresses if is_ip(a)]
    if ips and len(ips) != len(addresses):
        warnings.append("ingressGateways mix IPs and hostnames; only the IPs are used")
        addresses = ips
    return {"addresses": addresses, "resolution": "STATIC" if ips else "DNS", "port": port, "source": "metadata", "service": None, "selector": None}


def fetch_peer(spec, local_uuid=None, local_key=None, now=None, not_before=None, fetcher=None):
    """The peer's card (as cluster_info returns it) from its verified metadata; refuses documents issued before ``not_before``.
    ``local_uuid``/``local_key`` authenticate us to the private endpoint (Deckhouse JWT; required for a Deckhouse peer over HTTPS)."""
    now = now or utcnow()
    with about(spec.name):
        fetcher = fetcher or Fetcher(spec.location, spec.ca_pem, spec.validate_certs)
        public, ext, key, roots, warnings = _public(spec, fetcher, now, not_before)
        bearer = None
        if fetcher.kind == "https" and local_key is not None and local_uuid:
            bearer = make_jwt(local_key, local_uuid, public["clusterUUID"], now=now.timestamp())
        elif fetcher.kind == "https" and spec.protocol == "deckhouse":
            raise MetadataError("a Deckhouse peer's private metadata needs our cluster's signing key (meshfed_metadata_key_file) and UUID "
                                "to authenticate", "config", field="meshfed_metadata_key_file")
        raw = fetcher.get(PRIVATE_PATH, bearer=bearer)   # signed, of the same cluster and publication as the public document
        pext = _signed(fetcher, key, PRIVATE_PATH, raw, "private") if spec.protocol == "meshfed" else {}
        private = _json(raw, PRIVATE_PATH)
        if not pext and not isinstance(private.get("publicServices"), list):   # a Deckhouse document
            raise MetadataError("%s has no publicServices (is federation enabled on the peer?)" % PRIVATE_PATH)
        if pext and pext.get("clusterUUID") != public["clusterUUID"]:
            raise MetadataError("%s belongs to cluster %s, not %s" % (PRIVATE_PATH, pext.get("clusterUUID"), public["clusterUUID"]))
        if pext and (pext.get("issuedAt"), pext.get("expiresAt")) != (ext.get("issuedAt"), ext.get("expiresAt")):
            raise MetadataError("%s (issued %s) and %s (issued %s) are not from the same publication; refused"
                                % (PUBLIC_PATH, ext.get("issuedAt"), PRIVATE_PATH, pext.get("issuedAt")), "rollback")
        warnings = fetcher.warnings + warnings
        gateway = _gateway(private, warnings)
        found = [svc for svc in (_service(item, pext.get("services"), warnings) for item in private.get("publicServices") or []) if svc]
        services = sorted({svc["hostname"]: svc for svc in reversed(found)}.values(), key=lambda svc: svc["hostname"])  # a hostname's first wins
        trust_domain = ext.get("trustDomain") or spec.trust_domain
        if spec.trust_domain and trust_domain != spec.trust_domain:
            raise MetadataError("metadata says trust domain %s but the inventory says %s" % (ext.get("trustDomain"), spec.trust_domain),
                                field="meshfed_trust_domain")
        if not trust_domain:
            raise MetadataError("the peer's trust domain is unknown; set meshfed_trust_domain for a Deckhouse peer", "config",
                                field="meshfed_trust_domain")
    domains = sorted(set(service_host(s["hostname"])[2] for s in services if service_host(s["hostname"])))
    cluster_domain = ext.get("clusterDomain") or (domains[0] if len(domains) == 1 else trust_domain)
    issued, expires = ext.get("_times") or (None, None)
    coordinates = {"metadataEndpoint": spec.location, "protocol": spec.protocol,   # no secrets; defaults left out
                   "signerKeySHA256": spec.pinned_fingerprint, "rootCAFingerprints": sorted(spec.root_pins),
                   "caSHA256": hashlib.sha256(spec.ca_pem.strip().encode()).hexdigest() if spec.ca_pem else None,
                   "insecureSkipVerify": not spec.validate_certs}
    return {"name": spec.name, "trust_domain": trust_domain, "cluster_domain": cluster_domain, "istio_namespace": None, "root_cas": roots,
            "gateway": gateway, "public_services": services, "warnings": [prefixed(spec.name, w) for w in warnings],
            "metadata": {"protocol": spec.protocol, "location": spec.location, "clusterUUID": public["clusterUUID"], "signer": key_fingerprint(key),
                         "issuedAt": issued, "expiresAt": expires, "fetchedAt": iso(now),
                         "coordinates": {k: v for k, v in coordinates.items() if v},
                         "public": {k: public[k] for k in ("clusterUUID", "authnKeyPub", "rootCA")}}}
