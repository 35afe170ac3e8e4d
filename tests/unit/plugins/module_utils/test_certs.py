import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import CertError, parse_root_bundle, pem_sha256

from ...conftest import NOW, make_cert

FIELD = "ConfigMap istio-system/istio-ca-root-cert key root-cert.pem"


def parse(text):
    return parse_root_bundle(text, "cluster-b", FIELD, now=NOW)


def test_valid_root_is_returned_with_fingerprint_subject_and_expiry(root):
    cert, _key, pem = root
    roots, warnings = parse(pem)
    assert warnings == []
    assert len(roots) == 1
    assert roots[0]["pem"] == pem.strip() + "\n"
    assert roots[0]["sha256"] == pem_sha256(pem)
    assert len(roots[0]["sha256"]) == 64
    assert roots[0]["subject"] == "CN=Root CA cluster-b"
    assert roots[0]["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_bundle_keeps_order_and_drops_duplicates(root, other_root):
    roots = parse(root[2] + other_root[2] + root[2])[0]
    assert [r["subject"] for r in roots] == ["CN=Root CA cluster-b", "CN=Root CA cluster-c"]


@pytest.mark.parametrize("text, expected", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ("hello, not a certificate", "holds no PEM CERTIFICATE block"),
    ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "certificate #1 is not a valid X.509"),
])
def test_garbage_is_refused_naming_cluster_and_field(text, expected):
    with pytest.raises(CertError) as err:
        parse(text)
    assert str(err.value).startswith("cluster-b: %s: " % FIELD)
    assert expected in str(err.value)


def test_expired_root_is_refused():
    _c, _k, pem = make_cert("Old Root", days_before=400, days_after=-2)
    with pytest.raises(CertError, match=r"cluster-b: .*root-cert.pem: certificate #1 \(CN=Old Root\) expired on 2026-11-22"):
        parse(pem)


def test_not_yet_valid_root_is_refused():
    _c, _k, pem = make_cert("Future Root", days_before=-5)
    with pytest.raises(CertError, match="is not valid before"):
        parse(pem)


@pytest.mark.parametrize("ca", [False, None])
def test_non_ca_certificate_is_refused(ca):
    _c, _k, pem = make_cert("leaf.example", ca=ca)
    with pytest.raises(CertError, match=r"certificate #1 \(CN=leaf.example\) is not a CA certificate"):
        parse(pem)


def _key_pems():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode(),
        ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode(),
        rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode(),
    ]


@pytest.mark.parametrize("key_pem", _key_pems(), ids=["pkcs8", "ec", "rsa"])
def test_bundle_with_private_key_is_refused_without_echoing_it(root, key_pem):
    with pytest.raises(CertError) as err:
        parse(root[2] + key_pem)
    message = str(err.value)
    assert "cluster-b" in message and FIELD in message and "private key" in message
    body = [line for line in key_pem.splitlines() if not line.startswith("-----")]
    assert all(line not in message for line in body)


def test_intermediate_and_near_expiry_give_warnings_not_errors(root):
    _c, _k, near = make_cert("Soon Root", days_after=10)
    _i, _ik, inter = make_cert("Intermediate", issuer=(root[0], root[1]))
    roots, warnings = parse(near + inter)
    assert len(roots) == 2
    assert any("CN=Soon Root" in w and "expires on" in w for w in warnings)
    assert any("CN=Intermediate" in w and "not self-signed" in w for w in warnings)


def test_now_defaults_to_the_current_time(root):
    roots = parse_root_bundle(root[2], "cluster-b", FIELD)[0]
    assert roots[0]["not_after"] > datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
