# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Ed25519 keys, detached JWS (RFC 7515 appendix F) and the Deckhouse JWT. No I/O; error messages never include key material."""

import base64
import hashlib
import json
import re

from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import InvalidSignature, ed25519, serialization
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MetadataError
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import utcnow
from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import PEM_BLOCK

JWS_TYPE = "meshfed-metadata+jws"


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pem_der(text, field, want):
    """DER of the one PEM block of ``text`` whose label ends with ``want`` (Deckhouse writes ``ED25519 PUBLIC KEY``)."""
    blocks = PEM_BLOCK.findall(text or "")
    if len(blocks) != 1 or not blocks[0][0].endswith(want):
        raise MetadataError("%s is not one PEM %s block" % (field, want), field=field)
    try:
        return base64.b64decode("".join(blocks[0][1].split()), validate=True)
    except ValueError:   # binascii.Error
        raise MetadataError("%s has an undecodable PEM body" % field, field=field)


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
    """An Ed25519 private key from PKCS#8 PEM (``PRIVATE KEY`` or Deckhouse's ``ED25519 PRIVATE KEY``)."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else (pem or "")
    if "ENCRYPTED PRIVATE KEY" in text:
        raise MetadataError("%s is encrypted; give it decrypted through Ansible Vault instead" % field, "config", field=field)
    try:
        key = serialization.load_der_private_key(_pem_der(text, field, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError):
        raise MetadataError("%s is not a valid PKCS#8 private key (content not shown)" % field, "config", field=field)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise MetadataError("%s is not an Ed25519 key" % field, "config", field=field)
    return key


def generate_private_key_pem():
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _compact_jws(private_key, header, payload):
    """``[header, payload, signature]`` of an EdDSA compact JWS, each base64url; ``header`` a dict."""
    parts = [_b64url(json.dumps(header, sort_keys=True, separators=(",", ":")).encode()), _b64url(payload)]
    return parts + [_b64url(private_key.sign(".".join(parts).encode("ascii")))]


def sign_detached(private_key, payload):
    """JWS compact serialization with a detached payload: ``<header>..<signature>``."""
    header = {"alg": "EdDSA", "typ": JWS_TYPE, "kid": key_fingerprint(private_key.public_key())}
    parts = _compact_jws(private_key, header, payload)
    return parts[0] + ".." + parts[2]


def verify_detached(public_key, payload, signature, what):
    """Raise MetadataError(reason=signature) unless ``signature`` is our EdDSA JWS over ``payload``."""
    parts = (signature or "").strip().split(".")
    if len(parts) != 3 or parts[1] != "":
        raise MetadataError("%s signature is not a detached JWS (<header>..<signature>)" % what, "signature")
    try:
        header, sig = json.loads(_b64url_decode(parts[0])), _b64url_decode(parts[2])
    except ValueError:
        raise MetadataError("%s signature is not decodable" % what, "signature")
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or header.get("typ") != JWS_TYPE:
        raise MetadataError("%s signature header must be alg EdDSA, typ %s" % (what, JWS_TYPE), "signature")
    try:
        public_key.verify(sig, (parts[0] + "." + _b64url(payload)).encode("ascii"))
    except InvalidSignature:
        raise MetadataError("%s does not match its signature (tampered, or signed by another key)" % what, "signature")


def make_jwt(private_key, subject, audience, now=None, scope="private-federation"):
    """The bearer token Deckhouse's federation hook sends to a peer's private endpoint (a go-jose compact JWS, valid 60 s)."""
    now = int(now if now is not None else utcnow().timestamp())
    claims = {"iss": "d8-istio", "aud": audience, "sub": subject, "scope": scope, "nbf": now, "exp": now + 60}
    return ".".join(_compact_jws(private_key, {"alg": "EdDSA"}, json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()))
