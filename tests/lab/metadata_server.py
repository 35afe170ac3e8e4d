"""HTTPS servers on 127.0.0.1 for federation metadata (lab only).

* :class:`StaticMetadataServer` serves a published directory (what ``meshfed.istio.federation_metadata``
  writes) the way a static HTTPS host / object store would: GET of files, nothing else.
* :class:`DeckhousePeerServer` behaves like Deckhouse's metadata exporter
  (``ee/modules/110-istio/images/metadata-exporter``): ``/metadata/public/public.json`` open,
  ``/metadata/private/federation.json`` only with a bearer JWT that passes the exporter's
  ``checkAuthn``: ``Bearer`` prefix; compact JWS; claims read unverified; ``aud`` must be this cluster's
  UUID, ``scope`` must be ``private-federation``, ``exp`` not in the past, ``sub`` a cluster listed in its
  remote public metadata (``{uuid: {clusterUUID, authnKeyPub, rootCA}}``, what Deckhouse's alliance hook
  stores), then the signature verified with that cluster's ``authnKeyPub`` (PKIX PEM, Ed25519). Refusals
  are HTTP 401 ``Authentication error: <reason>`` like the exporter's. Written independently of the
  collection's own JWT code, so the collection's client is checked against a separate implementation.

Each server records every request (path, whether a token came, the check's outcome) in ``.log``.
TLS: a serving certificate for IP 127.0.0.1 from a lab CA (:func:`serving_pki`).
"""

import base64
import datetime
import functools
import json
import os
import ssl
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer, BaseHTTPRequestHandler

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.lab import pki


def serving_pki(cn="metadata.lab"):
    """``(ca_pem, cert_pem, key_pem)``: a fresh CA and a 127.0.0.1 serving certificate it signed."""
    ca_key = pki.ec_key()
    ca = pki.self_signed_ca(pki.name("%s serving CA" % cn, "meshfed lab"), ca_key)
    key = pki.ec_key()
    cert = pki.leaf(pki.name(cn), key, ca, ca_key, server=True, dns=["localhost"], ips=["127.0.0.1"])
    return pki.cert_pem(ca).decode(), pki.cert_pem(cert).decode(), pki.key_pem(key).decode()


class _Server(object):
    handler = None

    def __init__(self, cert_pem, key_pem):
        self.log = []
        self._tmp = tempfile.mkdtemp(prefix="meshfed-metadata-")
        cert_file = os.path.join(self._tmp, "tls.crt")
        key_file = os.path.join(self._tmp, "tls.key")
        with open(cert_file, "w") as f:
            f.write(cert_pem)
        with open(key_file, "w") as f:
            f.write(key_pem)
        os.chmod(key_file, 0o600)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_factory())
        self.httpd.daemon_threads = True
        self.httpd.socket = self.context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metadata-server", daemon=True)
        self._thread.start()

    def _handler_factory(self):
        raise NotImplementedError

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class StaticMetadataServer(_Server):
    """Serves ``directory`` read-only at ``url + '/'``."""

    def __init__(self, directory, cert_pem, key_pem):
        self.directory = str(directory)
        super().__init__(cert_pem, key_pem)

    def _handler_factory(self):
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                server.log.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                if self.path.endswith("/"):  # no directory listings
                    self.send_error(404)
                    return
                super().do_GET()

        return functools.partial(Handler, directory=self.directory)


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_claims(token):
    """The unverified claims of a compact JWS token."""
    return json.loads(_b64url_decode(token.split(".")[1]))


def parse_authn_key_pub(pem):
    """``x509.ParsePKIXPublicKey(pem.Decode(authnKeyPub).Bytes)`` — any PEM label, as Go's pem.Decode."""
    lines = [l for l in pem.strip().splitlines() if l and not l.startswith("-----")]
    return serialization.load_der_public_key(base64.b64decode("".join(lines)))


def check_authn(authorization, cluster_uuid, remote_public_metadata, scope="private-federation", now=None):
    """Deckhouse exporter's ``CheckAuthn``; returns None when the token passes, else the error text."""
    if not (authorization or "").startswith("Bearer "):
        return "Bearer authorization required"
    token = authorization[len("Bearer "):]
    parts = token.split(".")
    if len(parts) != 3:
        return "go-jose/go-jose: compact JWS format must have three parts"
    try:
        header = json.loads(_b64url_decode(parts[0]))
        payload = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except Exception as exc:  # pylint: disable=broad-except
        return "malformed token: %s" % exc
    if payload.get("aud") != cluster_uuid:
        return "JWT is signed for wrong destination cluster. Expected: %s, Got: %s" % (cluster_uuid, payload.get("aud"))
    if payload.get("scope") != scope:
        return "JWT is signed for wrong scope"
    now = int(time.time()) if now is None else now
    if int(payload.get("exp") or 0) < now:
        return "JWT token expired"
    remote = remote_public_metadata.get(payload.get("sub"))
    if remote is None:
        return "JWT is signed for unknown source cluster"
    try:
        key = parse_authn_key_pub(remote["authnKeyPub"])
    except Exception as exc:  # pylint: disable=broad-except
        return "failed to parse public key: %s" % exc
    if header.get("alg") != "EdDSA" or not isinstance(key, Ed25519PublicKey):
        return "cannot verify JWT token with known public key"
    try:
        key.verify(signature, (parts[0] + "." + parts[1]).encode("ascii"))
    except InvalidSignature:
        return "cannot verify JWT token with known public key"
    return None


class DeckhousePeerServer(_Server):
    """A Deckhouse cluster's metadata exporter, on ``url + '/metadata/'``.

    ``public``: ``{clusterUUID, authnKeyPub, rootCA}``; ``private``: ``{ingressGateways, publicServices}``;
    ``remote_public_metadata``: ``{uuid: {clusterUUID, authnKeyPub, rootCA}}`` of the clusters it federates
    with (mutable: tests may add/remove). ``clock`` (seconds) overrides the exporter's notion of now.
    """

    def __init__(self, public, private, remote_public_metadata, cert_pem, key_pem, clock=None):
        self.public = public
        self.private = private
        self.remote_public_metadata = remote_public_metadata
        self.clock = clock
        super().__init__(cert_pem, key_pem)

    @property
    def endpoint(self):
        return self.url + "/metadata/"

    def _handler_factory(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body, content_type="application/json"):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                entry = {"path": self.path, "authorization": self.headers.get("Authorization")}
                server.log.append(entry)
                if self.path == "/healthz":
                    self._send(200, "Ok.", "text/plain")
                elif self.path == "/metadata/public/public.json":
                    self._send(200, json.dumps(server.public, indent=2))
                elif self.path == "/metadata/private/federation.json":
                    error = check_authn(self.headers.get("Authorization"), server.public["clusterUUID"],
                                        server.remote_public_metadata, "private-federation", server.clock)
                    entry["authn_error"] = error
                    if error:
                        self._send(401, "Authentication error: " + error + "\n", "text/plain; charset=utf-8")
                    else:
                        self._send(200, json.dumps(server.private, indent=2))
                else:
                    self._send(404, "404 page not found\n", "text/plain; charset=utf-8")

        return Handler


def deckhouse_keypair():
    """Like Deckhouse's alliance keypair hook: Ed25519, PKCS#8 ``ED25519 PRIVATE KEY`` and PKIX
    ``ED25519 PUBLIC KEY`` PEM blocks. Returns ``(private_key, priv_pem, pub_pem)``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    der_priv = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    der_pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def pem(label, der):
        body = base64.b64encode(der).decode()
        return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(
            body[i:i + 64] for i in range(0, len(body), 64)), label)

    return key, pem("ED25519 PRIVATE KEY", der_priv), pem("ED25519 PUBLIC KEY", der_pub)


def utc_iso(offset_seconds=0):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
