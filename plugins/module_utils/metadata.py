# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Federation metadata: publish a cluster card, fetch and verify a peer's, Deckhouse-compatible.

Layout (the one Deckhouse's metadata exporter serves under its ``metadataEndpoint``)::

    <base>/public/public.json         {clusterUUID, authnKeyPub, rootCA}            + "meshfed" extension
    <base>/private/federation.json    {ingressGateways[{address,port}],
                                       publicServices[{hostname,ports[{name,port,protocol}]}]} + "meshfed"

Deckhouse's consumer decodes these into fixed Go structs, so it ignores the ``meshfed`` key, which
carries what this collection needs beyond them: trust domain, cluster domain, root fingerprints (all
roots of a rotation are in ``rootCA``), per-service namespace/name/service accounts, issue time and
expiry. Each document we publish has a detached signature next to it (``<file>.sig``): a JWS compact
serialization with a detached payload (RFC 7515 appendix F), EdDSA (Ed25519) over the document's exact
bytes. The signing key is the cluster's ``authnKeyPub`` key, the one Deckhouse peers already use to
check our JWTs.

A consumer trusts a peer by a pin given out of band: the peer's signing key (PEM, or its SHA-256
fingerprint ``sha256:<hex>`` of the SubjectPublicKeyInfo DER) and/or the SHA-256 fingerprints of its
root certificates. Deckhouse exporters do not sign; for them (``protocol: deckhouse``) integrity rests
on TLS plus the root pin, and the private part is fetched with Deckhouse's JWT (EdDSA, ``iss: d8-istio``,
``sub`` = our cluster UUID, ``aud`` = the peer's UUID, ``scope: private-federation``, ``nbf``/``exp`` one
minute apart), signed with our key.

Pure functions plus one small fetcher (urllib + ssl); no Ansible imports. Private keys are never
printed, returned or written anywhere but the key file the user names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import ssl
import traceback
import uuid

try:  # Python 3
    from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener
    from urllib.error import HTTPError, URLError
except ImportError:  # pragma: no cover
    HTTPRedirectHandler = HTTPSHandler = Request = build_opener = HTTPError = URLError = None

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.meshfed.istio.plugins.module_utils.certs import CertError, parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.facts import is_ip, port_protocol

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
_UUID_NAMESPACE = uuid.UUID("6f7c9a52-2d3e-5b8a-9c41-6d2f0e8b7a13")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)
_FINGERPRINT = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_HOSTNAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\.(.+)$")


class MetadataError(Exception):
    """A metadata problem. ``reason`` is a short machine-readable code; the message names the cluster.

    Reasons: ``fetch`` (cannot read), ``tls`` (certificate verification), ``malformed``, ``signature``
    (bad or missing signature: tampering), ``unknown_signer``, ``untrusted_root``, ``expired``,
    ``not_yet_valid``, ``rollback``, ``config`` (bad coordinates or key), ``unauthorized`` (the peer
    refused our token).
    """

    def __init__(self, message, reason="malformed"):
        super(MetadataError, self).__init__(message)
        self.reason = reason


# -- small helpers ----------------------------------------------------------------------------------
def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    if isinstance(text, bytes):
        text = text.decode("ascii")
    if not re.match(r"^[A-Za-z0-9_-]*$", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value, who, field):
    try:
        dt = datetime.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise MetadataError("%s: %s %r is not a UTC time like 2026-01-31T12:00:00Z" % (who, field, value))
    return dt.replace(tzinfo=datetime.timezone.utc)


def canonical_json(doc):
    """The exact bytes we publish and sign: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def default_cluster_uuid(cluster_name):
    """A stable UUID for a cluster that has none assigned (``meshfed_cluster_uuid`` overrides it)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, cluster_name))


def _require_crypto(who):
    if not HAS_CRYPTOGRAPHY:
        raise MetadataError("%s: the cryptography Python library is required" % who, "config")


def _pem_der(text, who, field, want):
    """DER bytes of the single PEM block in ``text`` whose label ends with ``want`` (any prefix, so
    Deckhouse's ``ED25519 PUBLIC KEY`` labels load too)."""
    blocks = _PEM.findall(text or "")
    if len(blocks) != 1 or not blocks[0][0].endswith(want):
        raise MetadataError("%s: %s is not one PEM %s block" % (who, field, want), "malformed")
    try:
        return base64.b64decode("".join(blocks[0][1].split()), validate=True)
    except (binascii.Error, ValueError):
        raise MetadataError("%s: %s has an undecodable PEM body" % (who, field), "malformed")


# -- keys --------------------------------------------------------------------------------------------
def load_public_key(pem, who, field="authnKeyPub"):
    _require_crypto(who)
    der = _pem_der(pem, who, field, "PUBLIC KEY")
    try:
        key = serialization.load_der_public_key(der)
    except Exception:
        raise MetadataError("%s: %s is not a valid public key" % (who, field), "malformed")
    if not isinstance(key, Ed25519PublicKey):
        raise MetadataError("%s: %s is not an Ed25519 key (%s)" % (who, field, type(key).__name__), "malformed")
    return key


def public_key_pem(key):
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(key):
    """``sha256:<hex>`` of the key's SubjectPublicKeyInfo DER (``openssl pkey -pubin -outform DER | sha256sum``)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_private_key(pem, who, field="signing key"):
    """An Ed25519 private key from PKCS#8 PEM (``PRIVATE KEY`` or Deckhouse's ``ED25519 PRIVATE KEY``).

    Error messages never include the key material."""
    _require_crypto(who)
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else (pem or "")
    if "ENCRYPTED PRIVATE KEY" in text:
        raise MetadataError("%s: %s is encrypted; give it decrypted through Ansible Vault instead" % (who, field),
                            "config")
    der = _pem_der(text, who, field, "PRIVATE KEY")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except Exception:
        raise MetadataError("%s: %s is not a valid PKCS#8 private key (content not shown)" % (who, field), "config")
    if not isinstance(key, Ed25519PrivateKey):
        raise MetadataError("%s: %s is not an Ed25519 key" % (who, field), "config")
    return key


def generate_private_key_pem():
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def parse_signer_pin(value, who):
    """``(key or None, fingerprint)`` from a pinned signer: Ed25519 public key PEM or ``sha256:<hex>``."""
    if not value:
        return None, None
    value = value.strip()
    match = _FINGERPRINT.match(value)
    if match:
        return None, "sha256:" + match.group(1).lower()
    key = load_public_key(value, who, "signer key pin (meshfed_metadata_signer_key)")
    return key, key_fingerprint(key)


def parse_root_pins(values, who):
    pins = set()
    for value in values or []:
        text = str(value).strip().lower()
        text = text[len("sha256:"):] if text.startswith("sha256:") else text
        match = _FINGERPRINT.match(text.replace(":", ""))
        if not match:
            raise MetadataError("%s: root fingerprint pin %r is not a SHA-256 hex digest (64 hex digits, "
                                "optionally prefixed sha256:) (field: meshfed_metadata_root_sha256)"
                                % (who, value), "config")
        pins.add(match.group(1).lower())
    return pins


# -- detached signatures -----------------------------------------------------------------------------
def sign_detached(private_key, payload):
    """JWS compact serialization with a detached payload: ``<header>..<signature>``."""
    header = {"alg": "EdDSA", "typ": JWS_TYPE, "kid": key_fingerprint(private_key.public_key())}
    protected = _b64url(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    signing_input = (protected + "." + _b64url(payload)).encode("ascii")
    return protected + ".." + _b64url(private_key.sign(signing_input))


def signature_kid(signature):
    """The ``kid`` a detached signature names (unverified), or None."""
    try:
        header = json.loads(_b64url_decode(signature.strip().split(".")[0]))
        return header.get("kid") if isinstance(header, dict) else None
    except Exception:
        return None


def verify_detached(public_key, payload, signature, who, what):
    """Raise MetadataError(reason=signature) unless ``signature`` is our EdDSA JWS over ``payload``."""
    parts = (signature or "").strip().split(".")
    if len(parts) != 3 or parts[1] != "":
        raise MetadataError("%s: %s signature is not a detached JWS (<header>..<signature>)" % (who, what), "signature")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        sig = _b64url_decode(parts[2])
    except Exception:
        raise MetadataError("%s: %s signature is not decodable" % (who, what), "signature")
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or header.get("typ") != JWS_TYPE:
        raise MetadataError("%s: %s signature header must be alg EdDSA, typ %s" % (who, what, JWS_TYPE), "signature")
    signing_input = (parts[0] + "." + _b64url(payload)).encode("ascii")
    try:
        public_key.verify(sig, signing_input)
    except InvalidSignature:
        raise MetadataError("%s: %s does not match its signature (tampered, or signed by another key)"
                            % (who, what), "signature")


# -- Deckhouse JWT (client side) ---------------------------------------------------------------------
def make_jwt(private_key, subject, audience, now=None, ttl=JWT_TTL, scope=JWT_SCOPE, issuer=JWT_ISSUER):
    """The bearer token Deckhouse's federation hook sends to a peer's private endpoint (go-jose
    compact JWS, header ``{"alg":"EdDSA"}``; claims iss, aud, sub, scope, nbf = now, exp = now + ttl)."""
    now = int(now if now is not None else utcnow().timestamp())
    claims = {"iss": issuer, "aud": audience, "sub": subject, "scope": scope, "nbf": now, "exp": now + int(ttl)}
    protected = _b64url(b'{"alg":"EdDSA"}')
    payload = _b64url(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    signing_input = (protected + "." + payload).encode("ascii")
    return protected + "." + payload + "." + _b64url(private_key.sign(signing_input))


def jwt_claims(token):
    """The unverified claims of a compact JWS (for reports and tests)."""
    return json.loads(_b64url_decode(token.split(".")[1]))


# -- publish -----------------------------------------------------------------------------------------
def build_documents(card, cluster_uuid, public_key, issued_at, expires_at):
    """``(public, private)`` documents (dicts) for a cluster card (docs/design.md "Cluster card")."""
    who = card.get("name") or "cluster"
    roots = card.get("root_cas") or []
    if not roots:
        raise MetadataError("%s: card has no root_cas; nothing for peers to trust" % who, "config")
    gateway = card.get("gateway") or {}
    if not gateway.get("addresses"):
        raise MetadataError("%s: card has no gateway.addresses; peers could not reach this cluster" % who, "config")
    times = {"issuedAt": iso(issued_at), "expiresAt": iso(expires_at)}
    public = {
        "clusterUUID": cluster_uuid,
        "authnKeyPub": public_key_pem(public_key),
        "rootCA": "".join(r["pem"].strip() + "\n" for r in roots),
        EXTENSION: dict(times, **{
            "version": FORMAT_VERSION,
            "document": "public",
            "clusterName": card["name"],
            "trustDomain": card["trust_domain"],
            "clusterDomain": card.get("cluster_domain") or card["trust_domain"],
            "rootCAFingerprints": [r["sha256"] for r in roots],
        }),
    }
    services = sorted(card.get("public_services") or [], key=lambda s: s["hostname"])
    private = {
        "ingressGateways": [{"address": a, "port": int(gateway["port"])} for a in gateway["addresses"]],
        "publicServices": [
            {"hostname": s["hostname"],
             "ports": [{"name": p["name"], "port": int(p["number"]), "protocol": p["protocol"]}
                       for p in sorted(s["ports"], key=lambda p: p["number"])]}
            for s in services
        ],
        EXTENSION: dict(times, **{
            "version": FORMAT_VERSION,
            "document": "private",
            "clusterUUID": cluster_uuid,
            "services": dict((s["hostname"], {"name": s["name"], "namespace": s["namespace"],
                                              "serviceAccounts": sorted(s.get("service_accounts") or [])})
                             for s in services),
        }),
    }
    return public, private


def _stable(doc):
    """A document without its issue/expiry times (to tell whether the content changed)."""
    doc = json.loads(json.dumps(doc))
    ext = doc.get(EXTENSION)
    if isinstance(ext, dict):
        ext.pop("issuedAt", None)
        ext.pop("expiresAt", None)
    return doc


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
    public_key = private_key.public_key()
    public, private = build_documents(card, cluster_uuid, public_key, now,
                                      now + datetime.timedelta(seconds=validity))
    keep = True
    for rel, doc in ((PUBLIC_PATH, public), (PRIVATE_PATH, private)):
        body, sig = existing.get(rel), existing.get(rel + SIGNATURE_SUFFIX)
        if body is None or sig is None:
            keep = False
            break
        try:
            verify_detached(public_key, body, sig.decode("ascii", "replace"), card["name"], rel)
            old = json.loads(body.decode("utf-8"))
            expires = parse_time(old[EXTENSION]["expiresAt"], card["name"], rel + " expiresAt")
        except (MetadataError, ValueError, KeyError, TypeError):
            keep = False
            break
        if _stable(old) != _stable(doc) or (expires - now).total_seconds() <= renew_before:
            keep = False
            break
    if keep:
        return dict((rel, existing[rel]) for rel in all_paths()), False
    files = {}
    for rel, doc in ((PUBLIC_PATH, public), (PRIVATE_PATH, private)):
        body = canonical_json(doc)
        files[rel] = body
        files[rel + SIGNATURE_SUFFIX] = (sign_detached(private_key, body) + "\n").encode("ascii")
    return files, True


def all_paths():
    return (PUBLIC_PATH, PUBLIC_PATH + SIGNATURE_SUFFIX, PRIVATE_PATH, PRIVATE_PATH + SIGNATURE_SUFFIX)


# -- fetch -------------------------------------------------------------------------------------------
class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # pylint: disable=too-many-arguments
        raise HTTPError(req.full_url, code, "redirect to %s refused (metadata is never fetched through a "
                        "redirect)" % newurl, headers, fp)


class Fetcher(object):
    """Reads metadata files from an ``https://`` base URL or a local directory (``file://`` or a path).

    TLS is verified against the system CAs, or only ``ca_pem`` (the peer's CA, pinned) when given.
    ``validate_certs=False`` is possible but reported. No redirects, at most MAX_DOCUMENT_BYTES.
    """

    def __init__(self, who, location, ca_pem=None, validate_certs=True, timeout=10):
        self.who = who
        self.location = (location or "").strip()
        self.timeout = timeout
        self.warnings = []
        self.requests = []
        if not self.location:
            raise MetadataError("%s: no metadata location (field: meshfed_metadata_url or meshfed_metadata_path)"
                                % who, "config")
        scheme = self.location.split("://", 1)[0].lower() if "://" in self.location else ""
        if scheme == "https":
            self.kind = "https"
            self.base = self.location.rstrip("/") + "/"
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            if ca_pem:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                self.warnings.append("%s: TLS certificate of %s is NOT verified (validate_certs=false); anyone "
                                     "on the path can serve this peer's metadata" % (who, self.location))
            self.opener = build_opener(HTTPSHandler(context=context), _NoRedirect())
        elif scheme in ("", "file"):
            self.kind = "file"
            path = self.location[len("file://"):] if scheme == "file" else self.location
            self.base = os.path.abspath(os.path.expanduser(path))
        else:
            raise MetadataError("%s: metadata location %s must be https:// or a local path (plain %s:// would let "
                                "anyone on the path change it)" % (who, self.location, scheme), "config")

    def url(self, rel):
        return self.base + rel if self.kind == "https" else os.path.join(self.base, rel)

    def get(self, rel, bearer=None, optional=False):
        """Bytes of ``rel``; None when ``optional`` and it does not exist."""
        where = self.url(rel)
        if self.kind == "file":
            try:
                with open(where, "rb") as handle:
                    data = handle.read(MAX_DOCUMENT_BYTES + 1)
            except (IOError, OSError) as exc:
                if optional and not os.path.exists(where):
                    return None
                raise MetadataError("%s: cannot read %s: %s" % (self.who, where, exc.strerror or exc), "fetch")
        else:
            headers = {"Accept": "application/json", "User-Agent": "meshfed.istio"}
            if bearer:
                headers["Authorization"] = "Bearer " + bearer
            self.requests.append({"url": where, "authorization": bool(bearer)})
            try:
                response = self.opener.open(Request(where, headers=headers), timeout=self.timeout)
                data = response.read(MAX_DOCUMENT_BYTES + 1)
            except HTTPError as exc:
                if optional and exc.code == 404:
                    return None
                body = ""
                try:
                    body = exc.read(300).decode("utf-8", "replace").strip()
                except Exception:
                    pass
                reason = "unauthorized" if exc.code in (401, 403) else "fetch"
                detail = (": " + body) if body else (" " + str(exc.reason))
                raise MetadataError("%s: GET %s: HTTP %s%s" % (self.who, where, exc.code, detail), reason)
            except URLError as exc:
                inner = exc.reason
                if isinstance(inner, ssl.SSLCertVerificationError) or isinstance(inner, ssl.CertificateError):
                    raise MetadataError("%s: TLS certificate of %s not trusted: %s (pin the peer's CA with "
                                        "meshfed_metadata_ca)" % (self.who, where, getattr(inner, "verify_message", None)
                                                                  or inner), "tls")
                if isinstance(inner, ssl.SSLError):
                    raise MetadataError("%s: TLS handshake with %s failed: %s" % (self.who, where, inner), "tls")
                raise MetadataError("%s: GET %s failed: %s" % (self.who, where, inner), "fetch")
            except (ssl.SSLError, OSError) as exc:
                reason = "tls" if isinstance(exc, ssl.SSLError) else "fetch"
                raise MetadataError("%s: GET %s failed: %s" % (self.who, where, exc), reason)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise MetadataError("%s: %s is larger than %d bytes; refused" % (self.who, where, MAX_DOCUMENT_BYTES),
                                "malformed")
        return data


# -- consume -----------------------------------------------------------------------------------------
def _json(data, who, what):
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError("%s: %s is not JSON (%s)" % (who, what, exc), "malformed")
    if not isinstance(doc, dict):
        raise MetadataError("%s: %s is not a JSON object" % (who, what), "malformed")
    return doc


def _check_validity(ext, who, what, now, not_before=None):
    issued = parse_time(ext.get("issuedAt"), who, what + " meshfed.issuedAt")
    expires = parse_time(ext.get("expiresAt"), who, what + " meshfed.expiresAt")
    if issued - now > datetime.timedelta(seconds=CLOCK_SKEW):
        raise MetadataError("%s: %s is issued in the future (%s); check the publisher's clock" % (who, what, iso(issued)),
                            "not_yet_valid")
    if expires <= now:
        raise MetadataError("%s: %s expired at %s; the peer must republish its metadata" % (who, what, iso(expires)),
                            "expired")
    if not_before is not None and issued < not_before:
        raise MetadataError("%s: %s was issued at %s, before the last metadata accepted (%s): an older copy is "
                            "being replayed; refused" % (who, what, iso(issued), iso(not_before)), "rollback")
    return issued, expires


def _pin_roots(roots, pins, who):
    if not pins:
        return
    have = [r["sha256"] for r in roots]
    unpinned = [fp for fp in have if fp not in pins]
    if not any(fp in pins for fp in have):
        raise MetadataError("%s: none of the metadata's root certificates (%s) matches a pinned fingerprint "
                            "(meshfed_metadata_root_sha256)" % (who, ", ".join(have)), "untrusted_root")
    if unpinned:
        raise MetadataError("%s: metadata carries root certificate(s) that are not pinned: %s; pin them "
                            "(meshfed_metadata_root_sha256) to accept a rotation" % (who, ", ".join(unpinned)),
                            "untrusted_root")


def _services(private, ext_services, who, warnings):
    services = []
    seen = set()
    for item in private.get("publicServices") or []:
        if not isinstance(item, dict) or not isinstance(item.get("hostname"), str):
            raise MetadataError("%s: private metadata publicServices has an entry without hostname" % who, "malformed")
        host = item["hostname"].lower()
        extra = (ext_services or {}).get(item["hostname"]) or {}
        match = _HOSTNAME.match(host)
        name, namespace = extra.get("name"), extra.get("namespace")
        if not (name and namespace):
            if not match:
                warnings.append("%s: public service %s is not <service>.<namespace>.svc.<domain>; skipped"
                                % (who, host))
                continue
            name, namespace = match.group(1), match.group(3)
        if host in seen:
            continue
        seen.add(host)
        ports = []
        for port in item.get("ports") or []:
            if not isinstance(port, dict) or not isinstance(port.get("port"), int) or isinstance(port.get("port"), bool):
                raise MetadataError("%s: public service %s has a port without a numeric port" % (who, host), "malformed")
            pname = str(port.get("name") or "")
            if not pname:
                warnings.append("%s: public service %s port %s has no name; skipped" % (who, host, port["port"]))
                continue
            ports.append({"name": pname, "number": port["port"],
                          "protocol": port.get("protocol") if port.get("protocol") in _CARD_PROTOCOLS
                          else port_protocol(pname)})
        if not ports:
            warnings.append("%s: public service %s has no usable port; skipped" % (who, host))
            continue
        accounts = extra.get("serviceAccounts") or []
        services.append({"name": name, "namespace": namespace, "hostname": host,
                         "ports": sorted(ports, key=lambda p: p["number"]),
                         "service_accounts": sorted(set(str(a) for a in accounts))})
    return sorted(services, key=lambda s: s["hostname"])


_CARD_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS")  # planner._PROTOCOLS


def _gateway(private, who, warnings):
    gateways = private.get("ingressGateways")
    if not isinstance(gateways, list) or not gateways:
        raise MetadataError("%s: private metadata has no ingressGateways; the peer's gateway cannot be reached"
                            % who, "malformed")
    entries = []
    for gw in gateways:
        if (not isinstance(gw, dict) or not isinstance(gw.get("address"), str) or not gw.get("address")
                or not isinstance(gw.get("port"), int) or not 1 <= gw["port"] <= 65535):
            raise MetadataError("%s: private metadata ingressGateways entry %r needs an address and a port" % (who, gw),
                                "malformed")
        entries.append((gw["address"], gw["port"]))
    port = entries[0][1]
    if any(p != port for _a, p in entries):
        warnings.append("%s: ingressGateways use several ports; only those on port %d are used" % (who, port))
        entries = [e for e in entries if e[1] == port]
    addresses = []
    for addr, _p in entries:
        if addr not in addresses:
            addresses.append(addr)
    ips = [a for a in addresses if is_ip(a)]
    if ips and len(ips) != len(addresses):
        warnings.append("%s: ingressGateways mix IPs and hostnames; only the IPs are used" % who)
        addresses = ips
    return {"addresses": addresses, "resolution": "STATIC" if ips else "DNS", "port": port,
            "source": "metadata", "service": None, "selector": None}


class PeerSpec(object):
    """Where a peer's metadata is and what it is trusted by (inventory host vars of a metadata peer)."""

    def __init__(self, name, location, protocol="meshfed", signer_key=None, root_sha256=None, ca_pem=None,
                 validate_certs=True, trust_domain=None):
        self.name = name
        self.location = location
        self.protocol = protocol or "meshfed"
        if self.protocol not in PROTOCOLS:
            raise MetadataError("%s: metadata protocol %r must be one of %s (field: meshfed_metadata_protocol)"
                                % (name, protocol, ", ".join(PROTOCOLS)), "config")
        self.pinned_key, self.pinned_fingerprint = parse_signer_pin(signer_key, name)
        self.root_pins = parse_root_pins(root_sha256, name)
        if not self.pinned_fingerprint and not self.root_pins:
            raise MetadataError("%s: no trust anchor for metadata peer; give meshfed_metadata_signer_key (the peer's "
                                "Ed25519 public key or sha256:<fingerprint>) and/or meshfed_metadata_root_sha256 "
                                "(its root CA fingerprints), obtained out of band" % name, "config")
        self.ca_pem = ca_pem
        self.validate_certs = validate_certs
        self.trust_domain = trust_domain

    def coordinates(self):
        """What the IstioFederation spec records (no secrets)."""
        result = {"metadataEndpoint": self.location, "protocol": self.protocol}
        if self.pinned_fingerprint:
            result["signerKeySHA256"] = self.pinned_fingerprint
        if self.root_pins:
            result["rootCAFingerprints"] = sorted(self.root_pins)
        if self.ca_pem:
            result["caSHA256"] = hashlib.sha256(self.ca_pem.strip().encode()).hexdigest()
        if not self.validate_certs:
            result["insecureSkipVerify"] = True
        return result


def fetch_peer(spec, local_uuid=None, local_key=None, now=None, not_before=None, fetcher=None):
    """Fetch, verify and convert a peer's metadata into a card (same shape as cluster_facts returns).

    ``local_uuid``/``local_key`` authenticate us to the peer's private endpoint (Deckhouse JWT); they are
    required for ``protocol: deckhouse``. ``not_before``: issue time of the last metadata accepted (from
    the IstioFederation status) — anything older is a replay. Raises MetadataError naming the peer.
    """
    who = spec.name
    now = now or utcnow()
    fetcher = fetcher or Fetcher(who, spec.location, spec.ca_pem, spec.validate_certs)
    warnings = list(fetcher.warnings)
    raw_public = fetcher.get(PUBLIC_PATH)
    public = _json(raw_public, who, PUBLIC_PATH)
    for field in ("clusterUUID", "authnKeyPub", "rootCA"):
        if not isinstance(public.get(field), str) or not public.get(field):
            raise MetadataError("%s: %s has no %s" % (who, PUBLIC_PATH, field), "malformed")
    peer_key = load_public_key(public["authnKeyPub"], who, PUBLIC_PATH + " authnKeyPub")
    peer_fp = key_fingerprint(peer_key)
    if spec.pinned_fingerprint and peer_fp != spec.pinned_fingerprint:
        raise MetadataError("%s: metadata is signed by an unknown key %s; the pinned signer is %s "
                            "(meshfed_metadata_signer_key)" % (who, peer_fp, spec.pinned_fingerprint), "unknown_signer")
    verify_key = spec.pinned_key or peer_key
    ext = {}
    issued = expires = None
    if spec.protocol == "meshfed":
        sig = fetcher.get(PUBLIC_PATH + SIGNATURE_SUFFIX, optional=True)
        if sig is None:
            raise MetadataError("%s: %s has no signature (%s%s); unsigned metadata is refused (a Deckhouse peer "
                                "needs meshfed_metadata_protocol: deckhouse)"
                                % (who, PUBLIC_PATH, PUBLIC_PATH, SIGNATURE_SUFFIX), "signature")
        kid = signature_kid(sig.decode("ascii", "replace"))
        if spec.pinned_fingerprint and kid and kid != spec.pinned_fingerprint:
            raise MetadataError("%s: %s is signed by an unknown key %s; the pinned signer is %s"
                                % (who, PUBLIC_PATH, kid, spec.pinned_fingerprint), "unknown_signer")
        verify_detached(verify_key, raw_public, sig.decode("ascii", "replace"), who, PUBLIC_PATH)
        ext = public.get(EXTENSION)
        if not isinstance(ext, dict) or ext.get("document") != "public":
            raise MetadataError("%s: %s lacks the meshfed extension" % (who, PUBLIC_PATH), "malformed")
        if ext.get("version") != FORMAT_VERSION:
            raise MetadataError("%s: %s has format version %r; this collection reads %d"
                                % (who, PUBLIC_PATH, ext.get("version"), FORMAT_VERSION), "malformed")
        issued, expires = _check_validity(ext, who, PUBLIC_PATH, now, not_before)
    try:
        roots, cert_warnings = parse_root_bundle(public["rootCA"], who, PUBLIC_PATH + " rootCA", now=now)
    except CertError as exc:
        raise MetadataError(str(exc), "malformed")
    warnings.extend(cert_warnings)
    _pin_roots(roots, spec.root_pins, who)
    if spec.protocol == "meshfed":
        listed = ext.get("rootCAFingerprints")
        if isinstance(listed, list) and sorted(listed) != sorted(r["sha256"] for r in roots):
            raise MetadataError("%s: %s rootCA does not match its rootCAFingerprints" % (who, PUBLIC_PATH), "malformed")

    bearer = None
    if local_key is not None and local_uuid and fetcher.kind == "https":
        bearer = make_jwt(local_key, local_uuid, public["clusterUUID"], now=now.timestamp())
    elif spec.protocol == "deckhouse" and fetcher.kind == "https":
        raise MetadataError("%s: a Deckhouse peer's private metadata needs our cluster's signing key "
                            "(meshfed_metadata_key_file) and UUID to authenticate" % who, "config")
    raw_private = fetcher.get(PRIVATE_PATH, bearer=bearer)
    pext = {}
    if spec.protocol == "meshfed":
        sig = fetcher.get(PRIVATE_PATH + SIGNATURE_SUFFIX, optional=True)
        if sig is None:
            raise MetadataError("%s: %s has no signature; refused" % (who, PRIVATE_PATH), "signature")
        verify_detached(verify_key, raw_private, sig.decode("ascii", "replace"), who, PRIVATE_PATH)
    private = _json(raw_private, who, PRIVATE_PATH)
    if spec.protocol == "meshfed":
        pext = private.get(EXTENSION)
        if not isinstance(pext, dict) or pext.get("document") != "private":
            raise MetadataError("%s: %s lacks the meshfed extension" % (who, PRIVATE_PATH), "malformed")
        if pext.get("clusterUUID") != public["clusterUUID"]:
            raise MetadataError("%s: %s belongs to cluster %s, not %s" % (who, PRIVATE_PATH, pext.get("clusterUUID"),
                                                                          public["clusterUUID"]), "malformed")
        _check_validity(pext, who, PRIVATE_PATH, now, not_before)
        if pext.get("issuedAt") != ext.get("issuedAt"):
            raise MetadataError("%s: %s (issued %s) and %s (issued %s) are not from the same publication; refused"
                                % (who, PUBLIC_PATH, ext.get("issuedAt"), PRIVATE_PATH, pext.get("issuedAt")),
                                "rollback")
    elif not isinstance(private.get("publicServices"), list):
        raise MetadataError("%s: %s has no publicServices (is federation enabled on the peer?)" % (who, PRIVATE_PATH),
                            "malformed")

    gateway = _gateway(private, who, warnings)
    services = _services(private, pext.get("services"), who, warnings)
    trust_domain = ext.get("trustDomain") or spec.trust_domain
    if spec.trust_domain and ext.get("trustDomain") and spec.trust_domain != ext.get("trustDomain"):
        raise MetadataError("%s: metadata says trust domain %s but the inventory says %s (meshfed_trust_domain)"
                            % (who, ext.get("trustDomain"), spec.trust_domain), "malformed")
    if not trust_domain:
        raise MetadataError("%s: the peer's trust domain is unknown; set meshfed_trust_domain for a Deckhouse peer"
                            % who, "config")
    cluster_domain = ext.get("clusterDomain")
    if not cluster_domain:
        domains = sorted(set(_HOSTNAME.match(s["hostname"]).group(5) for s in services
                             if _HOSTNAME.match(s["hostname"])))
        cluster_domain = domains[0] if len(domains) == 1 else trust_domain
    card = {
        "name": who,
        "trust_domain": trust_domain,
        "cluster_domain": cluster_domain,
        "istio_namespace": None,
        "root_cas": roots,
        "gateway": gateway,
        "public_services": services,
        "warnings": warnings,
        "metadata": {
            "protocol": spec.protocol,
            "location": spec.location,
            "clusterUUID": public["clusterUUID"],
            "signer": peer_fp,
            "issuedAt": iso(issued) if issued else None,
            "expiresAt": iso(expires) if expires else None,
            "fetchedAt": iso(now),
            "coordinates": spec.coordinates(),
            "public": {"clusterUUID": public["clusterUUID"], "authnKeyPub": public["authnKeyPub"],
                       "rootCA": public["rootCA"]},
        },
    }
    return card
