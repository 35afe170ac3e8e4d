"""Certificates and keys for the lab and the tests, generated with ``cryptography`` (no openssl, no cfssl).

The one PKI helper of the tests: the lab's CAs and leaves below, and ``make_cert``, the tests' factory
for one certificate at a given ``now`` (unit tests pin it; see tests/unit/conftest.py).

Lab-internal material (API server serving CA, client CA, admin cert, service-account keys) uses
ECDSA P-256 because it is fast to generate; the Istio CA material written by ``seed`` uses RSA like
Istio's own ``make-cacerts`` tooling.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def name(cn, org=None):
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(subject, issuer, public_key, days):
    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def self_signed_ca(subject, key, days=3650, path_length=None):
    """A self-signed root: CA:true, keyCertSign + cRLSign."""
    b = (_builder(subject, subject, key.public_key(), days)
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                      crl_sign=True, encipher_only=False, decipher_only=False), critical=True))
    return b.sign(key, hashes.SHA256())


def intermediate_ca(subject, key, issuer_cert, issuer_key, days=1825, path_length=0):
    b = (_builder(subject, issuer_cert.subject, key.public_key(), days)
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                      crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                        critical=False))
    return b.sign(issuer_key, hashes.SHA256())


def leaf(subject, key, issuer_cert, issuer_key, *, server=False, client=False, dns=(), ips=(), days=365):
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    b = (_builder(subject, issuer_cert.subject, key.public_key(), days)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                      key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                        critical=False))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_cert(cn="Root CA", ca=True, days_before=1, days_after=3650, issuer=None, key=None, now=None):
    """A certificate, its key and its PEM (str), valid from ``now - days_before`` to ``now + days_after``;
    self-signed unless issuer=(cert, key); ca=None: no BasicConstraints (and no other extension)."""
    key = key or ec_key()
    now = now or _now()
    subject = name(cn)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=days_before))
               .not_valid_after(now + datetime.timedelta(days=days_after)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    cert = builder.sign(signing_key, hashes.SHA256())
    return cert, key, cert_pem(cert).decode()


def load_cert(pem):
    if isinstance(pem, str):
        pem = pem.encode()
    return x509.load_pem_x509_certificate(pem)


def load_certs(pem):
    if isinstance(pem, str):
        pem = pem.encode()
    return x509.load_pem_x509_certificates(pem)


def fingerprint(cert):
    """Lowercase hex SHA-256 of the DER (the format docs/design.md uses for root_cas[].sha256)."""
    if isinstance(cert, (str, bytes)):
        cert = load_cert(cert)
    return cert.fingerprint(hashes.SHA256()).hex()
