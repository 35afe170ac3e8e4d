# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate a mesh's root CA bundle (public certificates only). Pure functions, no I/O."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import re
import traceback

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_ANY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
EXPIRY_WARNING_DAYS = 30


class CertError(Exception):
    """A root bundle problem; the message names the cluster and the field."""


def _iso(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_after(cert):
    return getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _not_before(cert):
    return getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def pem_sha256(pem):
    """Lowercase hex SHA-256 of the DER of the first certificate in ``pem``."""
    cert = x509.load_pem_x509_certificate(normalize_pem(pem).encode("ascii"))
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_pem(pem):
    return pem.strip() + "\n"


def parse_root_bundle(pem_text, cluster, field, now=None):
    """Parse and check a root CA bundle. Returns ``(roots, warnings)``; raises :class:`CertError`.

    Refuses empty input, undecodable blocks, any private key (without echoing it), certificates
    that are expired, not yet valid, or not CAs.
    """
    if not HAS_CRYPTOGRAPHY:
        raise CertError("%s: %s: the cryptography Python library is required" % (cluster, field))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    where = "%s: %s" % (cluster, field)
    text = pem_text or ""
    if not text.strip():
        raise CertError("%s: is empty; expected the mesh's root CA certificate(s) in PEM" % where)
    kinds = _ANY_BEGIN.findall(text)
    if any("PRIVATE KEY" in kind for kind in kinds):
        raise CertError("%s: contains a private key (%s block); refused. A root bundle must only hold public "
                        "certificates; the key was not read, stored or printed. Remove it from the ConfigMap "
                        "and rotate that key." % (where, next(k for k in kinds if "PRIVATE KEY" in k)))
    blocks = [m for m in _BLOCK.finditer(text) if m.group(1) == "CERTIFICATE"]
    if not blocks:
        raise CertError("%s: holds no PEM CERTIFICATE block%s" % (
            where, " (found: %s)" % ", ".join(sorted(set(kinds))) if kinds else ""))
    if len(kinds) != len(blocks) or len(_BLOCK.findall(text)) != len(kinds):
        raise CertError("%s: has a truncated or non-certificate PEM block; expected only CERTIFICATE blocks" % where)
    roots = []
    warnings = []
    seen = set()
    for number, match in enumerate(blocks, 1):
        pem = normalize_pem(match.group(0))
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
            der = cert.public_bytes(serialization.Encoding.DER)
        except Exception as exc:
            raise CertError("%s: certificate #%d is not a valid X.509 certificate (%s)"
                            % (where, number, str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__))
        digest = hashlib.sha256(der).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        subject = cert.subject.rfc4514_string()
        label = "certificate #%d (%s)" % (number, subject or "no subject")
        not_after = _not_after(cert)
        not_before = _not_before(cert)
        if not_after <= now:
            raise CertError("%s: %s expired on %s; renew the mesh's root CA" % (where, label, _iso(not_after)))
        if not_before > now:
            raise CertError("%s: %s is not valid before %s" % (where, label, _iso(not_before)))
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise CertError("%s: %s is not a CA certificate (BasicConstraints CA:TRUE missing); a root bundle "
                            "must hold CA certificates only" % (where, label))
        if (not_after - now).days < EXPIRY_WARNING_DAYS:
            warnings.append("%s: %s expires on %s (in less than %d days)"
                            % (where, label, _iso(not_after), EXPIRY_WARNING_DAYS))
        if cert.issuer != cert.subject:
            warnings.append("%s: %s is not self-signed (issuer %s); peers will trust it as a root"
                            % (where, label, cert.issuer.rfc4514_string()))
        roots.append({"pem": pem, "sha256": digest, "subject": subject, "not_after": _iso(not_after)})
    return roots, warnings
