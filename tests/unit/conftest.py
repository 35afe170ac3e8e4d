"""Unit tests import the collection as ansible_collections.meshfed.istio (make collection links it)."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.collection import ensure_collection_link

ensure_collection_link(importable=True)

NOW = datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc)


def make_cert(cn="Root CA", ca=True, days_before=1, days_after=3650, issuer=None, key=None):
    """A certificate (PEM) and its key; self-signed unless issuer=(cert, key)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=days_before))
               .not_valid_after(NOW + datetime.timedelta(days=days_after)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    cert = builder.sign(signing_key, hashes.SHA256())
    return cert, key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def root():
    return make_cert("Root CA cluster-b")


@pytest.fixture(scope="session")
def other_root():
    return make_cert("Root CA cluster-c")
