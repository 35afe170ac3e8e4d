"""A real-network round trip for the lab (issue 21): every lab API server behind a Toxiproxy proxy with a
``latency`` toxic each way (TLS passes through untouched: the proxy is plain TCP on 127.0.0.1, which the
serving certificate names). ``tc netem`` is not in this kernel; Toxiproxy is a Go binary built once with
``go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0`` into ~/.cache/meshfed (outside the clone,
like the lab binaries; MESHFED_TOXIPROXY_CACHE overrides), under a lock so parallel sessions build once.

  with Wan(clusters, workdir, rtt_ms=20) as wan:
      wan.kubeconfigs   # {cluster name: kubeconfig path whose server is the proxy}
"""

import fcntl
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

VERSION = "v2.5.0"
MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"


def cache_dir():
    root = os.environ.get("MESHFED_TOXIPROXY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "meshfed")
    return Path(root) / ("toxiproxy-" + VERSION)


def binary():
    """The toxiproxy server binary, built on first use (Go module proxy; needs Go)."""
    out = cache_dir()
    exe = out / "server"
    if os.access(exe, os.X_OK):
        return exe
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(exe, os.X_OK):
            env = dict(os.environ, GOBIN=str(out), GOFLAGS=os.environ.get("GOFLAGS", "-buildvcs=false"), CGO_ENABLED="0")
            subprocess.run(["go", "install", "%s@%s" % (MODULE, VERSION)], env=env, check=True)
    return exe


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Wan:
    def __init__(self, clusters, workdir, rtt_ms=20):
        self.clusters, self.workdir, self.rtt_ms = clusters, Path(workdir), rtt_ms
        self.proc, self.api, self.kubeconfigs = None, None, {}

    def _call(self, method, path, body=None):
        req = urllib.request.Request(self.api + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        try:
            return json.loads(body or b"null")
        except ValueError:  # GET /version answers plain text in v2.5.0
            return body.decode()

    def __enter__(self):
        port = _free_port()
        self.api = "http://127.0.0.1:%d" % port
        log = open(self.workdir / "toxiproxy.log", "w")
        self.proc = subprocess.Popen([str(binary()), "-host", "127.0.0.1", "-port", str(port)], stdout=log, stderr=log)
        for _ in range(100):
            try:
                self._call("GET", "/version")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("toxiproxy did not start: see %s" % (self.workdir / "toxiproxy.log"))
        half = self.rtt_ms / 2.0
        for c in self.clusters:
            listen = _free_port()
            self._call("POST", "/proxies", {"name": c.name, "listen": "127.0.0.1:%d" % listen,
                                            "upstream": "127.0.0.1:%d" % c.port, "enabled": True})
            for stream in ("upstream", "downstream"):
                self._call("POST", "/proxies/%s/toxics" % c.name, {
                    "name": "latency_" + stream, "type": "latency", "stream": stream, "toxicity": 1.0,
                    "attributes": {"latency": int(half), "jitter": 0}})
            cfg = yaml.safe_load(Path(c.kubeconfig).read_text())
            for entry in cfg["clusters"]:
                entry["cluster"]["server"] = "https://127.0.0.1:%d" % listen
            path = self.workdir / ("%s-wan-kubeconfig.yaml" % c.name)
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            path.chmod(0o600)
            self.kubeconfigs[c.name] = str(path)
        return self

    def measured_rtt_ms(self, cluster, samples=10):
        """Median extra time of a GET /version on a kept-alive connection through the proxy over the
        same request sent directly (ms): the round trip every request pays."""
        import http.client
        import ssl
        import statistics
        ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
        ctx.load_cert_chain(str(cluster.cert_file), str(cluster.key_file))
        server = yaml.safe_load(Path(self.kubeconfigs[cluster.name]).read_text())["clusters"][0]["cluster"]["server"]

        def timed(url):
            host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
            conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
            out = []
            for _ in range(samples + 1):
                t0 = time.perf_counter()
                conn.request("GET", "/version")
                conn.getresponse().read()
                out.append(time.perf_counter() - t0)
            conn.close()
            return statistics.median(out[1:])  # the first one paid the handshake
        return round((timed(server) - timed(cluster.server)) * 1000, 1)

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
