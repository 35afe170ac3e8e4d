# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Federation metadata: publish a cluster card, fetch and verify a peer's, Deckhouse-compatible.

docs/design.md ("Published metadata") lists the documents, their fields, the pins and the Deckhouse JWT.
The layout is the one Deckhouse's metadata exporter serves under its ``metadataEndpoint``; its consumer
decodes fixed Go structs, so it ignores the ``meshfed`` key that carries what this collection needs beyond
them. Each document we publish has a detached JWS next to it (RFC 7515 appendix F): EdDSA over the exact
bytes, with the cluster's ``authnKeyPub`` key, the one Deckhouse peers already use to check our JWTs.
Deckhouse exporters do not sign; for them (``protocol: deckhouse``) integrity rests on TLS plus the pins.

No Ansible imports. Private keys are never printed, returned or written anywhere but the key file the
user names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import json
import os
import re
import ssl
import uuid
from urllib.error import HTTPError, URLError
from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener

from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import InvalidSignature, ed25519, serialization
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import iso, utcnow
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import parse as parse_iso
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MeshfedError, about, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import is_ip, port_protocol, valid_port

FORMAT_VERSION = 1
EXTENSION = "meshfed"
PUBLIC_PATH = "public/public.json"
PRIVATE_PATH = "private/federation.json"
SIGNATURE_SUFFIX = ".sig"
JWS_TYPE = "meshfed-metadata+jws"
JWT_ISSUER = "d8-istio"
JWT_SCOPE = "private-federation"
JWT_TTL = 60
DEFAULT_VALIDITY = 7 * 24 * 3600
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
CLOCK_SKEW = 300
PROTOCOLS = ("meshfed", "deckhouse")
CARD_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS")
_UUID_NAMESPACE = uuid.UUID("6f7c9a52-2d3e-5b8a-9c41-6d2f0e8b7a13")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_HOSTNAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\.(.+)$")


class MetadataError(MeshfedError):
    """Metadata refused. ``reason`` is a short code: ``fetch`` (cannot read), ``tls`` (certificate
    verification), ``malformed``, ``signature`` (bad or missing signature: tampering), ``unknown_signer``,
    ``untrusted_root``, ``expired``, ``not_yet_valid``, ``rollback``, ``config`` (bad coordinates or key),
    ``unauthorized`` (the peer refused our token)."""

    def __init__(self, message, reason="malformed", cluster=None, field=None, status=None):
        super(MetadataError, self).__init__(message, status=status, reason=reason, cluster=cluster, field=field)


# -- small helpers ----------------------------------------------------------------------------------
def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    if not re.match(r"^[A-Za-z0-9_-]*$", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_time(value, field):
    try:
        return parse_iso(value)
    except ValueError:
        raise MetadataError("%s %r is not a UTC time like 2026-01-31T12:00:00Z" % (field, value), field=field)


def canonical_json(doc):
    """The exact bytes we publish and sign: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def default_cluster_uuid(cluster_name):
    """A stable UUID for a cluster that has none assigned (``meshfed_cluster_uuid`` overrides it)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, cluster_name))


def _pem_der(text, field, want):
    """DER bytes of the single PEM block in ``text`` whose label ends with ``want`` (any prefix, so
    Deckhouse's ``ED25519 PUBLIC KEY`` labels load too)."""
    blocks = _PEM.findall(text or "")
    if len(blocks) != 1 or not blocks[0][0].endswith(want):
        raise MetadataError("%s is not one PEM %s block" % (field, want), field=field)
    try:
        return base64.b64decode("".join(blocks[0][1].split()), validate=True)
    except ValueError:   # binascii.Error
        raise MetadataError("%s has an undecodable PEM body" % field, field=field)


# -- keys --------------------------------------------------------------------------------------------
def load_public_key(pem, field="authnKeyPub"):
    try:
        key = serialization.load_der_public_key(_pem_der(pem, field, "PUBLIC KEY"))
    except ValueError:
        raise MetadataError("%s is not a valid public key" % field, field=field)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise MetadataError("%s is not an Ed25519 key (%s)" % (field, type(key).__name__), field=field)
    return key


def public_key_pem(key):
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(key):
    """``sha256:<hex>`` of the key's SubjectPublicKeyInfo DER (``openssl pkey -pubin -outform DER | sha256sum``)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_private_key(pem, field="signing key"):
    """An Ed25519 private key from PKCS#8 PEM (``PRIVATE KEY`` or Deckhouse's ``ED25519 PRIVATE KEY``).

    Error messages never include the key material."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else (pem or "")
    if "ENCRYPTED PRIVATE KEY" in text:
        raise MetadataError("%s is encrypted; give it decrypted through Ansible Vault instead" % field, "config",
                            field=field)
    der = _pem_der(text, field, "PRIVATE KEY")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise MetadataError("%s is not a valid PKCS#8 private key (content not shown)" % field, "config", field=field)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise MetadataError("%s is not an Ed25519 key" % field, "config", field=field)
    return key


def generate_private_key_pem():
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _fingerprint_text(value):
    """Lowercase hex of a SHA-256 pin written as hex, ``sha256:<hex>`` or ``AA:BB:…``; None if it is not one."""
    text = str(value).strip().lower()
    text = (text[len("sha256:"):] if text.startswith("sha256:") else text).replace(":", "")
    return text if _FINGERPRINT.fullmatch(text) else None


def parse_signer_pin(value):
    """``(key or None, fingerprint)`` from a pinned signer: Ed25519 public key PEM or ``sha256:<hex>``."""
    if not value:
        return None, None
    digest = _fingerprint_text(value)
    if digest:
        return None, "sha256:" + digest
    key = load_public_key(value.strip(), "meshfed_metadata_signer_key")
    return key, key_fingerprint(key)


def parse_root_pins(values):
    pins = set()
    for value in values or []:
        digest = _fingerprint_text(value)
        if not digest:
            raise MetadataError("meshfed_metadata_root_sha256: %r is not a SHA-256 hex digest (64 hex digits, "
                                "optionally prefixed sha256:)" % (value,), "config",
                                field="meshfed_metadata_root_sha256")
        pins.add(digest)
    return pins


# -- detached signatures -----------------------------------------------------------------------------
def _compact_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _compact_jws(private_key, header, payload):
    """``[header, payload, signature]`` of an EdDSA compact JWS, each base64url; ``header`` a dict."""
    parts = [_b64url(_compact_json(header)), _b64url(payload)]
    return parts + [_b64url(private_key.sign(".".join(parts).encode("ascii")))]


def sign_detached(private_key, payload):
    """JWS compact serialization with a detached payload: ``<header>..<signature>``."""
    header = {"alg": "EdDSA", "typ": JWS_TYPE, "kid": key_fingerprint(private_key.public_key())}
    protected, _payload, signature = _compact_jws(private_key, header, payload)
    return protected + ".." + signature


def verify_detached(public_key, payload, signature, what):
    """Raise MetadataError(reason=signature) unless ``signature`` is our EdDSA JWS over ``payload``."""
    parts = (signature or "").strip().split(".")
    if len(parts) != 3 or parts[1] != "":
        raise MetadataError("%s signature is not a detached JWS (<header>..<signature>)" % what, "signature")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        sig = _b64url_decode(parts[2])
    except ValueError:
        raise MetadataError("%s signature is not decodable" % what, "signature")
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or header.get("typ") != JWS_TYPE:
        raise MetadataError("%s signature header must be alg EdDSA, typ %s" % (what, JWS_TYPE), "signature")
    try:
        public_key.verify(sig, (parts[0] + "." + _b64url(payload)).encode("ascii"))
    except InvalidSignature:
        raise MetadataError("%s does not match its signature (tampered, or signed by another key)" % what,
                            "signature")


# -- Deckhouse JWT (client side) ---------------------------------------------------------------------
def make_jwt(private_key, subject, audience, now=None, ttl=JWT_TTL, scope=JWT_SCOPE, issuer=JWT_ISSUER):
    """The bearer token Deckhouse's federation hook sends to a peer's private endpoint (go-jose
    compact JWS, header ``{"alg":"EdDSA"}``; claims iss, aud, sub, scope, nbf = now, exp = now + ttl)."""
    now = int(now if now is not None else utcnow().timestamp())
    claims = {"iss": issuer, "aud": audience, "sub": subject, "scope": scope, "nbf": now, "exp": now + int(ttl)}
    return ".".join(_compact_jws(private_key, {"alg": "EdDSA"}, _compact_json(claims)))


def jwt_claims(token):
    """The unverified claims of a compact JWS (for reports and tests)."""
    return json.loads(_b64url_decode(token.split(".")[1]))


# -- publish -----------------------------------------------------------------------------------------
def _public_document(card, cluster_uuid, public_key, times):
    roots = card.get("root_cas") or []
    if not roots:
        raise MetadataError("card has no root_cas; nothing for peers to trust", "config", field="root_cas")
    return {
        "clusterUUID": cluster_uuid,
        "authnKeyPub": public_key_pem(public_key),
        "rootCA": "".join(r["pem"].strip() + "\n" for r in roots),
        EXTENSION: dict(times, version=FORMAT_VERSION, document="public", clusterName=card["name"],
                        trustDomain=card["trust_domain"],
                        clusterDomain=card.get("cluster_domain") or card["trust_domain"],
                        rootCAFingerprints=[r["sha256"] for r in roots]),
    }


def _private_document(card, cluster_uuid, times):
    gateway = card.get("gateway") or {}
    if not gateway.get("addresses"):
        raise MetadataError("card has no gateway addresses; peers could not reach this cluster", "config",
                            field="gateway.addresses")
    services = sorted(card.get("public_services") or [], key=lambda s: s["hostname"])
    extras = dict((s["hostname"], {"name": s["name"], "namespace": s["namespace"],
                                   "serviceAccounts": sorted(s.get("service_accounts") or [])}) for s in services)
    return {
        "ingressGateways": [{"address": a, "port": int(gateway["port"])} for a in gateway["addresses"]],
        "publicServices": [
            {"hostname": s["hostname"],
             "ports": [{"name": p["name"], "port": int(p["number"]), "protocol": p["protocol"]}
                       for p in sorted(s["ports"], key=lambda p: p["number"])]}
            for s in services
        ],
        EXTENSION: dict(times, version=FORMAT_VERSION, document="private", clusterUUID=cluster_uuid,
                        services=extras),
    }


def _stable(doc):
    """A document without its issue/expiry times (to tell whether the content changed)."""
    doc = json.loads(json.dumps(doc))
    for field in ("issuedAt", "expiresAt"):
        doc[EXTENSION].pop(field, None)
    return doc


def _still_current(public_key, rel, doc, existing, now, renew_before):
    """True when ``existing`` holds ``doc``'s content at ``rel``, signed by ``public_key``, not yet due for renewal."""
    body, sig = existing.get(rel), existing.get(rel + SIGNATURE_SUFFIX)
    if body is None or sig is None:
        return False
    try:
        verify_detached(public_key, body, sig.decode("ascii", "replace"), rel)
        old = json.loads(body.decode("utf-8"))
        expires = parse_time(old[EXTENSION]["expiresAt"], rel + " expiresAt")
    except (MetadataError, ValueError, KeyError, TypeError):
        return False
    return _stable(old) == _stable(doc) and (expires - now).total_seconds() > renew_before


def plan_publication(card, cluster_uuid, private_key, existing, now=None, validity=DEFAULT_VALIDITY,
                     renew_before=None):
    """Decide what to write. ``existing`` maps relative path -> bytes (or None) for the four files.

    Returns ``(files, changed)``: ``files`` maps each relative path to the bytes it must hold. When the
    content is unchanged, the existing signatures verify with our key and the documents are valid for
    longer than ``renew_before`` (default: a third of ``validity``), the existing bytes are kept so a
    rerun changes nothing.
    """
    now = now or utcnow()
    renew_before = validity // 3 if renew_before is None else renew_before
    times = {"issuedAt": iso(now), "expiresAt": iso(now + datetime.timedelta(seconds=validity))}
    public_key = private_key.public_key()
    with about(card.get("name")):
        docs = {PUBLIC_PATH: _public_document(card, cluster_uuid, public_key, times),
                PRIVATE_PATH: _private_document(card, cluster_uuid, times)}
    if all(_still_current(public_key, rel, doc, existing, now, renew_before) for rel, doc in docs.items()):
        return dict((rel, existing[rel]) for rel in all_paths()), False
    files = {}
    for rel, doc in docs.items():
        files[rel] = canonical_json(doc)
        files[rel + SIGNATURE_SUFFIX] = (sign_detached(private_key, files[rel]) + "\n").encode("ascii")
    return files, True


def all_paths():
    return (PUBLIC_PATH, PUBLIC_PATH + SIGNATURE_SUFFIX, PRIVATE_PATH, PRIVATE_PATH + SIGNATURE_SUFFIX)


# -- fetch -------------------------------------------------------------------------------------------
class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # pylint: disable=too-many-arguments
        raise HTTPError(req.full_url, code, "redirect to %s refused (metadata is never fetched through a "
                        "redirect)" % newurl, headers, fp)


def _tls_context(ca_pem, validate_certs):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem or None)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Fetcher(object):
    """Reads metadata files from an ``https://`` base URL or a local directory (``file://`` or a path).

    TLS is verified against the system CAs, or only ``ca_pem`` (the peer's CA, pinned) when given.
    ``validate_certs=False`` is possible but reported. No redirects, at most MAX_DOCUMENT_BYTES.
    """

    def __init__(self, location, ca_pem=None, validate_certs=True, timeout=10):
        self.location, self.timeout, self.warnings = (location or "").strip(), timeout, []
        if not self.location:
            raise MetadataError("no metadata location (meshfed_metadata_url or meshfed_metadata_path)", "config",
                                field="meshfed_metadata_url")
        scheme = self.location.split("://", 1)[0].lower() if "://" in self.location else ""
        if scheme == "https":
            self.kind, self.base = "https", self.location.rstrip("/") + "/"
            self.opener = build_opener(HTTPSHandler(context=_tls_context(ca_pem, validate_certs)), _NoRedirect())
            if not validate_certs:
                self.warnings.append("TLS certificate of %s is NOT verified (validate_certs=false); anyone on the "
                                     "path can serve this peer's metadata" % self.location)
        elif scheme in ("", "file"):
            path = self.location[len("file://"):] if scheme else self.location
            self.kind, self.base = "file", os.path.join(os.path.abspath(os.path.expanduser(path)), "")
        else:
            raise MetadataError("metadata location %s must be https:// or a local path (plain %s:// would let anyone "
                                "on the path change it)" % (self.location, scheme), "config",
                                field="meshfed_metadata_url")

    def get(self, rel, bearer=None, optional=False):
        """Bytes of ``rel``; None when ``optional`` and it does not exist."""
        where = self.base + rel
        data = self._read_file(where, optional) if self.kind == "file" else self._read_https(where, bearer, optional)
        if data is not None and len(data) > MAX_DOCUMENT_BYTES:
            raise MetadataError("%s is larger than %d bytes; refused" % (where, MAX_DOCUMENT_BYTES))
        return data

    @staticmethod
    def _read_file(where, optional):
        try:
            with open(where, "rb") as handle:
                return handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            if optional and not os.path.exists(where):
                return None
            raise MetadataError("cannot read %s: %s" % (where, exc.strerror or exc), "fetch")

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
            raise _http_error(where, exc)
        except OSError as exc:   # URLError, ssl.SSLError, timeouts
            raise _connection_error(where, exc.reason if isinstance(exc, URLError) else exc)


def _http_error(where, exc):
    try:
        body = exc.read(300).decode("utf-8", "replace").strip()
    except (OSError, AttributeError):
        body = ""
    detail = (": " + body) if body else (" " + str(exc.reason))
    return MetadataError("GET %s: HTTP %s%s" % (where, exc.code, detail),
                         "unauthorized" if exc.code in (401, 403) else "fetch", status=exc.code)


def _connection_error(where, inner):
    if isinstance(inner, (ssl.SSLCertVerificationError, ssl.CertificateError)):
        return MetadataError("TLS certificate of %s not trusted: %s (pin the peer's CA with meshfed_metadata_ca)"
                             % (where, getattr(inner, "verify_message", None) or inner), "tls",
                             field="meshfed_metadata_ca")
    if isinstance(inner, ssl.SSLError):
        return MetadataError("TLS handshake with %s failed: %s" % (where, inner), "tls")
    return MetadataError("GET %s failed: %s" % (where, inner), "fetch")


# -- consume -----------------------------------------------------------------------------------------
class PeerSpec(object):
    """Where a peer's metadata is and what it is trusted by (inventory host vars of a metadata peer)."""

    def __init__(self, name, location, protocol="meshfed", signer_key=None, root_sha256=None, ca_pem=None,
                 validate_certs=True, trust_domain=None):
        self.name, self.location, self.protocol = name, location, protocol or "meshfed"
        self.ca_pem, self.validate_certs, self.trust_domain = ca_pem, validate_certs, trust_domain
        with about(name):
            if self.protocol not in PROTOCOLS:
                raise MetadataError("metadata protocol %r must be one of %s" % (protocol, ", ".join(PROTOCOLS)),
                                    "config", field="meshfed_metadata_protocol")
            self.pinned_key, self.pinned_fingerprint = parse_signer_pin(signer_key)
            self.root_pins = parse_root_pins(root_sha256)
            if not self.pinned_fingerprint and not self.root_pins:
                raise MetadataError("no trust anchor for metadata peer; give meshfed_metadata_signer_key (the peer's "
                                    "Ed25519 public key or sha256:<fingerprint>) and/or meshfed_metadata_root_sha256 "
                                    "(its root CA fingerprints), obtained out of band", "config",
                                    field="meshfed_metadata_signer_key")

    def coordinates(self):
        """What the IstioFederation spec records (no secrets); pins not given and defaults are left out."""
        ca_sha256 = hashlib.sha256(self.ca_pem.strip().encode()).hexdigest() if self.ca_pem else None
        optional = {"signerKeySHA256": self.pinned_fingerprint, "rootCAFingerprints": sorted(self.root_pins),
                    "caSHA256": ca_sha256, "insecureSkipVerify": not self.validate_certs}
        result = {"metadataEndpoint": self.location, "protocol": self.protocol}
        result.update((k, v) for k, v in optional.items() if v)
        return result


def _json(data, what):
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError as exc:   # UnicodeDecodeError too
        raise MetadataError("%s is not JSON (%s)" % (what, exc))
    if not isinstance(doc, dict):
        raise MetadataError("%s is not a JSON object" % what)
    return doc


def _check_validity(ext, what, now, not_before=None):
    issued = parse_time(ext.get("issuedAt"), what + " meshfed.issuedAt")
    expires = parse_time(ext.get("expiresAt"), what + " meshfed.expiresAt")
    if issued - now > datetime.timedelta(seconds=CLOCK_SKEW):
        raise MetadataError("%s is issued in the future (%s); check the publisher's clock" % (what, iso(issued)),
                            "not_yet_valid")
    if expires <= now:
        raise MetadataError("%s expired at %s; the peer must republish its metadata" % (what, iso(expires)), "expired")
    if not_before is not None and issued < not_before:
        raise MetadataError("%s was issued at %s, before the last metadata accepted (%s): an older copy is being "
                            "replayed; refused" % (what, iso(issued), iso(not_before)), "rollback")
    return issued, expires


def _pin_roots(roots, pins):
    if not pins:
        return
    have = [r["sha256"] for r in roots]
    if not any(fp in pins for fp in have):
        raise MetadataError("none of the metadata's root certificates (%s) matches a pinned fingerprint "
                            "(meshfed_metadata_root_sha256)" % ", ".join(have), "untrusted_root",
                            field="meshfed_metadata_root_sha256")
    unpinned = [fp for fp in have if fp not in pins]
    if unpinned:
        raise MetadataError("metadata carries root certificate(s) that are not pinned: %s; pin them "
                            "(meshfed_metadata_root_sha256) to accept a rotation" % ", ".join(unpinned),
                            "untrusted_root", field="meshfed_metadata_root_sha256")


def _signed(fetcher, key, rel, raw):
    """Verify the detached signature of ``raw`` (the bytes of ``rel``) with ``key``."""
    sig = fetcher.get(rel + SIGNATURE_SUFFIX, optional=True)
    if sig is None:
        raise MetadataError("%s has no signature (%s%s); unsigned metadata is refused (a Deckhouse peer needs "
                            "meshfed_metadata_protocol: deckhouse)" % (rel, rel, SIGNATURE_SUFFIX), "signature")
    verify_detached(key, raw, sig.decode("ascii", "replace"), rel)


def _extension(doc, rel, document):
    ext = doc.get(EXTENSION)
    if not isinstance(ext, dict) or ext.get("document") != document:
        raise MetadataError("%s lacks the meshfed extension" % rel)
    if ext.get("version") != FORMAT_VERSION:
        raise MetadataError("%s has format version %r; this collection reads %d"
                            % (rel, ext.get("version"), FORMAT_VERSION))
    return ext


def _public(spec, fetcher, now, not_before):
    """The verified public document: ``(doc, extension, key, roots, warnings)``."""
    raw = fetcher.get(PUBLIC_PATH)
    doc = _json(raw, PUBLIC_PATH)
    for field in ("clusterUUID", "authnKeyPub", "rootCA"):
        if not isinstance(doc.get(field), str) or not doc.get(field):
            raise MetadataError("%s has no %s" % (PUBLIC_PATH, field))
    key = load_public_key(doc["authnKeyPub"], PUBLIC_PATH + " authnKeyPub")
    if spec.pinned_fingerprint and key_fingerprint(key) != spec.pinned_fingerprint:
        raise MetadataError("metadata is signed by an unknown key %s; the pinned signer is %s "
                            "(meshfed_metadata_signer_key)" % (key_fingerprint(key), spec.pinned_fingerprint),
                            "unknown_signer", field="meshfed_metadata_signer_key")
    ext = {}
    if spec.protocol == "meshfed":
        _signed(fetcher, spec.pinned_key or key, PUBLIC_PATH, raw)
        ext = _extension(doc, PUBLIC_PATH, "public")
        ext["_times"] = _check_validity(ext, PUBLIC_PATH, now, not_before)
    try:
        roots, warnings = parse_root_bundle(doc["rootCA"], None, PUBLIC_PATH + " rootCA", now=now)
    except MeshfedError as exc:
        raise MetadataError(exc.message, "malformed", field=exc.field)
    _pin_roots(roots, spec.root_pins)
    listed = ext.get("rootCAFingerprints")
    if isinstance(listed, list) and sorted(listed) != sorted(r["sha256"] for r in roots):
        raise MetadataError("%s rootCA does not match its rootCAFingerprints" % PUBLIC_PATH)
    return doc, ext, key, roots, warnings


def _private(spec, fetcher, public, ext, key, bearer):
    """The verified private document and its extension."""
    raw = fetcher.get(PRIVATE_PATH, bearer=bearer)
    if spec.protocol != "meshfed":
        doc = _json(raw, PRIVATE_PATH)
        if not isinstance(doc.get("publicServices"), list):
            raise MetadataError("%s has no publicServices (is federation enabled on the peer?)" % PRIVATE_PATH)
        return doc, {}
    _signed(fetcher, spec.pinned_key or key, PRIVATE_PATH, raw)
    doc = _json(raw, PRIVATE_PATH)
    pext = _extension(doc, PRIVATE_PATH, "private")
    if pext.get("clusterUUID") != public["clusterUUID"]:
        raise MetadataError("%s belongs to cluster %s, not %s" % (PRIVATE_PATH, pext.get("clusterUUID"),
                                                                  public["clusterUUID"]))
    if pext.get("issuedAt") != ext.get("issuedAt") or pext.get("expiresAt") != ext.get("expiresAt"):
        raise MetadataError("%s (issued %s) and %s (issued %s) are not from the same publication; refused"
                            % (PUBLIC_PATH, ext.get("issuedAt"), PRIVATE_PATH, pext.get("issuedAt")), "rollback")
    return doc, pext


def _bearer(spec, fetcher, public, local_uuid, local_key, now):
    if fetcher.kind != "https":
        return None
    if local_key is not None and local_uuid:
        return make_jwt(local_key, local_uuid, public["clusterUUID"], now=now.timestamp())
    if spec.protocol == "deckhouse":
        raise MetadataError("a Deckhouse peer's private metadata needs our cluster's signing key "
                            "(meshfed_metadata_key_file) and UUID to authenticate", "config",
                            field="meshfed_metadata_key_file")
    return None


def _port(host, port, warnings):
    if not isinstance(port, dict) or not isinstance(port.get("port"), int) or isinstance(port.get("port"), bool):
        raise MetadataError("public service %s has a port without a numeric port" % host)
    name = str(port.get("name") or "")
    if not name:
        warnings.append("public service %s port %s has no name; skipped" % (host, port["port"]))
        return None
    protocol = port.get("protocol") if port.get("protocol") in CARD_PROTOCOLS else port_protocol(0, name)
    return {"name": name, "number": port["port"], "protocol": protocol}


def _service(item, extras, warnings):
    """One card ``public_services`` entry from a ``publicServices`` item (None when unusable)."""
    if not isinstance(item, dict) or not isinstance(item.get("hostname"), str):
        raise MetadataError("%s publicServices has an entry without hostname" % PRIVATE_PATH)
    host = item["hostname"].lower()
    extra = (extras or {}).get(item["hostname"]) or {}
    match = _HOSTNAME.match(host)
    name, namespace = extra.get("name"), extra.get("namespace")
    if not (name and namespace) and not match:
        warnings.append("public service %s is not <service>.<namespace>.svc.<domain>; skipped" % host)
        return None
    ports = [p for p in (_port(host, port, warnings) for port in item.get("ports") or []) if p]
    if not ports:
        warnings.append("public service %s has no usable port; skipped" % host)
        return None
    return {"name": name or match.group(1), "namespace": namespace or match.group(3), "hostname": host,
            "ports": sorted(ports, key=lambda p: p["number"]),
            "service_accounts": sorted(set(str(a) for a in extra.get("serviceAccounts") or []))}


def _services(private, extras, warnings):
    services = {}
    for item in private.get("publicServices") or []:
        svc = _service(item, extras, warnings)
        if svc and svc["hostname"] not in services:
            services[svc["hostname"]] = svc
    return [services[h] for h in sorted(services)]


def _gateway(private, warnings):
    gateways = private.get("ingressGateways")
    if not isinstance(gateways, list) or not gateways:
        raise MetadataError("%s has no ingressGateways; the peer's gateway cannot be reached" % PRIVATE_PATH)
    for gw in gateways:
        if (not isinstance(gw, dict) or not isinstance(gw.get("address"), str) or not gw.get("address")
                or not valid_port(gw.get("port"))):
            raise MetadataError("%s ingressGateways entry %r needs an address and a port" % (PRIVATE_PATH, gw))
    port = gateways[0]["port"]
    if any(gw["port"] != port for gw in gateways):
        warnings.append("ingressGateways use several ports; only those on port %d are used" % port)
    addresses = list(dict.fromkeys(gw["address"] for gw in gateways if gw["port"] == port))
    ips = [a for a in addresses if is_ip(a)]
    if ips and len(ips) != len(addresses):
        warnings.append("ingressGateways mix IPs and hostnames; only the IPs are used")
        addresses = ips
    return {"addresses": addresses, "resolution": "STATIC" if ips else "DNS", "port": port,
            "source": "metadata", "service": None, "selector": None}


def _domains(spec, ext, services):
    trust_domain = ext.get("trustDomain") or spec.trust_domain
    if spec.trust_domain and ext.get("trustDomain") and spec.trust_domain != ext.get("trustDomain"):
        raise MetadataError("metadata says trust domain %s but the inventory says %s"
                            % (ext.get("trustDomain"), spec.trust_domain), field="meshfed_trust_domain")
    if not trust_domain:
        raise MetadataError("the peer's trust domain is unknown; set meshfed_trust_domain for a Deckhouse peer",
                            "config", field="meshfed_trust_domain")
    domains = sorted(set(_HOSTNAME.match(s["hostname"]).group(5) for s in services if _HOSTNAME.match(s["hostname"])))
    return trust_domain, ext.get("clusterDomain") or (domains[0] if len(domains) == 1 else trust_domain)


def _metadata_block(spec, public, ext, key, now):
    issued, expires = ext.get("_times") or (None, None)
    return {
        "protocol": spec.protocol, "location": spec.location, "clusterUUID": public["clusterUUID"],
        "signer": key_fingerprint(key), "issuedAt": iso(issued) if issued else None,
        "expiresAt": iso(expires) if expires else None, "fetchedAt": iso(now), "coordinates": spec.coordinates(),
        "public": dict((k, public[k]) for k in ("clusterUUID", "authnKeyPub", "rootCA")),
    }


def fetch_peer(spec, local_uuid=None, local_key=None, now=None, not_before=None, fetcher=None):
    """Fetch, verify and convert a peer's metadata into a card (same shape as cluster_facts returns).

    ``local_uuid``/``local_key`` authenticate us to the peer's private endpoint (Deckhouse JWT); they are
    required for ``protocol: deckhouse`` over HTTPS. ``not_before``: refuse documents issued earlier.
    Raises MetadataError naming the peer.
    """
    now = now or utcnow()
    with about(spec.name):
        fetcher = fetcher or Fetcher(spec.location, spec.ca_pem, spec.validate_certs)
        public, ext, key, roots, warnings = _public(spec, fetcher, now, not_before)
        bearer = _bearer(spec, fetcher, public, local_uuid, local_key, now)
        private, pext = _private(spec, fetcher, public, ext, key, bearer)
        warnings = fetcher.warnings + warnings
        gateway = _gateway(private, warnings)
        services = _services(private, pext.get("services"), warnings)
        trust_domain, cluster_domain = _domains(spec, ext, services)
    return {
        "name": spec.name, "trust_domain": trust_domain, "cluster_domain": cluster_domain, "istio_namespace": None,
        "root_cas": roots, "gateway": gateway, "public_services": services,
        "warnings": [prefixed(spec.name, w) for w in warnings],
        "metadata": _metadata_block(spec, public, ext, key, now),
    }


# -- files (publisher and key holder side) -----------------------------------------------------------
def read_published(dest):
    """The four published files under ``dest`` as {relative path: bytes or None}."""
    result = {}
    for rel in all_paths():
        try:
            with open(os.path.join(dest, rel), "rb") as handle:
                result[rel] = handle.read()
        except OSError:
            result[rel] = None
    return result


def write_published(dest, files):
    """Write each file atomically (temporary file + rename), mode 0644: the documents are public."""
    for rel, data in files.items():
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        tmp = "%s.meshfed-%d" % (path, os.getpid())
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)


def read_key(path, field, generate=False, dry_run=False):
    """``(key, generated)`` from an Ed25519 key file; with ``generate`` a missing file is created (0600).

    A file readable by others is refused: it is a private key. Nothing about the key is ever echoed."""
    if not os.path.exists(path):
        if not generate:
            raise MetadataError("%s does not exist (set meshfed_metadata_generate_key: true to create it)" % path,
                                "config", field=field)
        pem = generate_private_key_pem()
        if not dry_run:
            os.makedirs(os.path.dirname(os.path.abspath(path)), 0o700, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(pem)
        return load_private_key(pem, field), True
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise MetadataError("%s is readable by group or others (mode %o); chmod 600 it" % (path, mode), "config",
                            field=field)
    try:
        with open(path, "rb") as handle:
            return load_private_key(handle.read(), "%s %s" % (field, path)), False
    except OSError as exc:
        raise MetadataError("cannot read %s (%s)" % (path, exc.strerror), "config", field=field)


def pem_or_file(value, field):
    """PEM text given inline, or read from the file ``value`` names."""
    if not value or "-----BEGIN" in value:
        return value or None
    try:
        with open(os.path.expanduser(value)) as handle:
            return handle.read()
    except OSError as exc:
        raise MetadataError("%s is neither PEM nor a readable file (%s)" % (value, exc.strerror), "config",
                            field=field)
