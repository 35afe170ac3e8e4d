# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Validate a mesh's root CA bundle (public certificates only). Pure functions, no I/O."""

import hashlib
import re

from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import serialization, x509
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import iso, utcnow
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import CertError, about, prefixed

# The one PEM splitter: (label, body) of each armoured block; labels are matched exactly by the callers.
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
EXPIRY_WARNING_DAYS = 30


def pem_sha256(pem):
    """Lowercase hex SHA-256 of the DER of the first certificate in ``pem``."""
    cert = x509.load_pem_x509_certificate(normalize_pem(pem).encode("ascii"))
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_pem(pem):
    return pem.strip() + "\n"


def _error(field, text):
    return CertError("%s: %s" % (field, text), field=field)


def parse_root_bundle(pem_text, cluster, field, now=None, warning_days=EXPIRY_WARNING_DAYS):
    """``(roots, warnings)`` of a root CA bundle; raises :class:`CertError` for empty input, PEM armour other
    than CERTIFICATE (a private key is refused without echoing it), and certificates that are not usable roots."""
    text, now = pem_text or "", now or utcnow()
    roots, warnings = [], []
    with about(cluster):
        if not text.strip():
            raise _error(field, "is empty; expected the mesh's root CA certificate(s) in PEM")
        kinds = re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", text)
        keys = [kind for kind in kinds if "PRIVATE KEY" in kind]
        if keys:
            raise _error(field, "contains a private key (%s block); refused. A root bundle must only hold public certificates; "
                                "the key was not read, stored or printed. Remove it from the ConfigMap and rotate that key." % keys[0])
        blocks = [normalize_pem(m.group(0)) for m in PEM_BLOCK.finditer(text) if m.group(1) == "CERTIFICATE"]
        if not blocks:
            raise _error(field, "holds no PEM CERTIFICATE block%s" % (" (found: %s)" % ", ".join(sorted(set(kinds))) if kinds else ""))
        if len(kinds) != len(blocks):  # a BEGIN without its END, or a block of another type
            raise _error(field, "has a truncated or non-certificate PEM block; expected only CERTIFICATE blocks")
        for number, pem in enumerate(blocks, 1):
            try:  # one block at a time, so errors say which
                cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
                digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
            except Exception as exc:
                raise _error(field, "certificate #%d is not a valid X.509 certificate (%s)"
                             % (number, str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__))
            if digest not in [root["sha256"] for root in roots]:   # a duplicate is left out
                subject = cert.subject.rfc4514_string()
                label = "certificate #%d (%s)" % (number, subject or "no subject")
                warnings.extend(prefixed(cluster, "%s: %s" % (field, w)) for w in _check_root(cert, label, field, now, warning_days))
                roots.append({"pem": pem, "sha256": digest, "subject": subject, "not_after": iso(cert.not_valid_after_utc)})
    return roots, warnings


def _check_root(cert, label, field, now, warning_days):
    """Refuse a certificate that cannot be a usable root; return warnings for a doubtful one."""
    not_after, not_before = cert.not_valid_after_utc, cert.not_valid_before_utc
    if not_after <= now:
        raise _error(field, "%s expired on %s; renew the mesh's root CA" % (label, iso(not_after)))
    if not_before > now:
        raise _error(field, "%s is not valid before %s" % (label, iso(not_before)))
    if not any(isinstance(ext.value, x509.BasicConstraints) and ext.value.ca for ext in cert.extensions):
        raise _error(field, "%s is not a CA certificate (BasicConstraints CA:TRUE missing); a root bundle must hold CA certificates only" % label)
    warnings = []
    if (not_after - now).days < warning_days:
        warnings.append("%s expires on %s (in less than %d days)" % (label, iso(not_after), warning_days))
    if cert.issuer != cert.subject:
        warnings.append("%s is not self-signed (issuer %s); peers will trust it as a root" % (label, cert.issuer.rfc4514_string()))
    return warnings
