"""Certificates for tests (the lab's PKI is tests/lab/pki.py): one factory, time relative to ``now``."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_cert(cn="Root CA", ca=True, days_before=1, days_after=3650, issuer=None, key=None, now=None):
    """A certificate, its key and its PEM; self-signed unless issuer=(cert, key); ca=None: no BasicConstraints."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=days_before))
               .not_valid_after(now + datetime.timedelta(days=days_after)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    cert = builder.sign(signing_key, hashes.SHA256())
    return cert, key, cert.public_bytes(serialization.Encoding.PEM).decode()
