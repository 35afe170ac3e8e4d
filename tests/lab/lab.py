"""Real multi-cluster Kubernetes lab: one etcd + one kube-apiserver per cluster, all on 127.0.0.1.

No kubelet, no controller-manager, no scheduler: the lab is "the API as the collection sees it".
Every cluster has its own serving CA, client CA, admin client certificate (O=system:masters),
service-account signing key (TokenRequest works) and RBAC authorization.

    lab = Lab("/tmp/somewhere")
    a, b = lab.start(["cluster-a", "cluster-b"])
    a.kubeconfig, a.context, a.server, a.api_client()
    a.stop_apiserver(); a.start_apiserver()      # simulate an unreachable cluster, keep etcd + port
    lab.stop()

Process hygiene: children run in their own session (process group) and get SIGKILL from the kernel
if this Python process dies (PR_SET_PDEATHSIG). PDEATHSIG fires when the *thread* that forked the
child exits, so every child is forked by one long-lived spawner thread, never by a short-lived
worker. Labs are also stopped at exit (atexit) and on SIGTERM/SIGINT.
"""

import atexit
import base64
import ctypes
import functools
import http.client
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import yaml

from tests.lab import pki

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD_SH = HERE / "build.sh"

SERVICE_CIDR = "10.96.0.0/16"


class LabError(RuntimeError):
    """A lab cluster could not be started / reached; the message carries the relevant log tails."""


# --------------------------------------------------------------------------------------------------
# binaries
# --------------------------------------------------------------------------------------------------
_bin_lock = threading.Lock()
_bin_dir = None


def binaries(verbose=True):
    """Directory holding kube-apiserver and etcd; builds them (tests/lab/build.sh) if needed.

    build.sh is the single source of truth for versions, the cache location and
    KUBEBUILDER_ASSETS; on a warm cache it returns in milliseconds.
    """
    global _bin_dir
    with _bin_lock:
        if _bin_dir is None:
            proc = subprocess.run(["bash", str(BUILD_SH)], check=False, stdout=subprocess.PIPE,
                                  stderr=None if verbose else subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise LabError("tests/lab/build.sh failed (rc=%d)\n%s" % (proc.returncode, proc.stderr or ""))
            lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            d = Path(lines[-1].strip())
            for b in ("kube-apiserver", "etcd"):
                if not os.access(d / b, os.X_OK):
                    raise LabError("build.sh reported %s but %s is missing there" % (d, b))
            _bin_dir = d
        return _bin_dir


# --------------------------------------------------------------------------------------------------
# process handling
# --------------------------------------------------------------------------------------------------
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid):
    # runs in the forked child before exec: die with the parent, and do not start if it is gone
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


class _Spawner:
    """One daemon thread that forks every lab process (see module docstring: PDEATHSIG is per thread)."""

    def __init__(self):
        self._q = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()

    def _run(self):
        while True:
            fn, fut = self._q.get()
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def popen(self, argv, **kw):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="meshfed-lab-spawner", daemon=True)
                self._thread.start()
        kw.setdefault("preexec_fn", functools.partial(_child_setup, os.getpid()))
        fut = Future()
        self._q.put((lambda: subprocess.Popen(argv, **kw), fut))
        return fut.result()


_SPAWNER = _Spawner()


# When set (by .ci/run), each running child's process group id is recorded as a file in this
# directory, removed once the group is stopped: what a crashed run leaves is exactly what to kill.
PGID_DIR_ENV = "MESHFED_LAB_PGID_DIR"


def _record_pgid(pgid, running):
    directory = os.environ.get(PGID_DIR_ENV)
    if not directory or pgid is None:
        return
    path = Path(directory) / str(pgid)
    if running:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    else:
        path.unlink(missing_ok=True)


class Proc:
    """A child process in its own process group, output appended to a log file."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = env
        self.popen = None

    def start(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(("\n=== %s start %s\n" % (self.name, time.strftime("%H:%M:%S"))).encode())
            log.flush()
            self.popen = _SPAWNER.popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True, env=self.env)
        _record_pgid(self.popen.pid, running=True)  # leads its own session, so pid == pgid
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def terminate(self):
        """Send SIGTERM to the process group (non-blocking)."""
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)  # the child leads its own session and group
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, timeout=10.0):
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL the group; reaps the child."""
        p = self.popen
        if p is None:
            return
        self.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # also reaps stragglers left in the group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _record_pgid(p.pid, running=False)
        self.popen = None

    def log_tail(self, lines=40):
        try:
            data = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log at %s)" % self.log_path
        return "\n".join(data[-lines:])

    def rss_kib(self):
        return _rss_kib(self.pid) if self.alive() else 0


def _rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------------------------------
_port_lock = threading.Lock()
_handed_out = set()


def free_ports(n):
    """n distinct currently-free TCP ports on 127.0.0.1 (never handed out twice by this process)."""
    with _port_lock:
        socks, ports = [], []
        try:
            while len(ports) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                socks.append(s)
                p = s.getsockname()[1]
                if p not in _handed_out:
                    ports.append(p)
        finally:
            for s in socks:
                s.close()
        _handed_out.update(ports)
        return ports


def _port_conflict(*procs):
    return any("address already in use" in p.log_tail(80).lower() for p in procs)


# --------------------------------------------------------------------------------------------------
# cluster
# --------------------------------------------------------------------------------------------------
class Cluster:
    """One lab cluster. ``name`` is also the kubeconfig context and cluster name."""

    def __init__(self, lab, name, directory):
        self.lab = lab
        self.name = name
        self.context = name
        self.dir = Path(directory)
        self.pki_dir = self.dir / "pki"
        self.kubeconfig = self.dir / "kubeconfig.yaml"
        self.etcd_data = self.dir / "etcd-data"
        self.etcd_port = self.etcd_peer_port = self.port = None
        self.etcd = None
        self.apiserver = None
        self._ssl_ctx = None
        self._shared_client = None

    # ---- addresses / files ----
    @property
    def server(self):
        return "https://127.0.0.1:%d" % self.port

    @property
    def ca_file(self):
        return self.pki_dir / "serving-ca.crt"

    @property
    def cert_file(self):
        return self.pki_dir / "admin.crt"

    @property
    def key_file(self):
        return self.pki_dir / "admin.key"

    @property
    def service_account_issuer(self):
        return "https://kubernetes.default.svc.%s.local" % self.name

    def __repr__(self):
        return "<Cluster %s %s>" % (self.name, self.server if self.port else "(not started)")

    # ---- clients ----
    def configuration(self):
        """A fresh kubernetes.client.Configuration for the admin identity (TLS verified)."""
        from kubernetes import client as k8s
        c = k8s.Configuration()
        c.host = self.server
        c.ssl_ca_cert = str(self.ca_file)
        c.cert_file = str(self.cert_file)
        c.key_file = str(self.key_file)
        c.verify_ssl = True
        return c

    def api_client(self):
        """A new kubernetes.client.ApiClient authenticated as the cluster admin (system:masters)."""
        from kubernetes import client as k8s
        return k8s.ApiClient(self.configuration())

    def shared_client(self):
        """One ApiClient per cluster reused by the lab's own helpers (thread-safe connection pool)."""
        if self._shared_client is None:
            self._shared_client = self.api_client()
        return self._shared_client

    def token_client(self, token):
        """A new ApiClient authenticated with a bearer token (e.g. from the TokenRequest API)."""
        from kubernetes import client as k8s
        c = k8s.Configuration()
        c.host = self.server
        c.ssl_ca_cert = str(self.ca_file)
        c.verify_ssl = True
        c.api_key = {"authorization": "Bearer " + token}
        return k8s.ApiClient(c)

    def ca_pem(self):
        return self.ca_file.read_text()

    def _ssl_context(self):
        if self._ssl_ctx is None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            self._ssl_ctx = ctx
        return self._ssl_ctx

    def get(self, path, timeout=3.0):
        """Raw admin GET; returns (status, body bytes)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._ssl_context(), timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    # ---- lifecycle ----
    def _write_pki(self):
        d = self.pki_dir
        d.mkdir(parents=True, exist_ok=True)
        files = {}
        serving_ca_key = pki.ec_key()
        serving_ca = pki.self_signed_ca(pki.name("%s serving CA" % self.name, "meshfed-lab"), serving_ca_key)
        srv_key = pki.ec_key()
        srv = pki.leaf(pki.name("kube-apiserver", "meshfed-lab"), srv_key, serving_ca, serving_ca_key, server=True,
                       dns=["localhost", self.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
                       ips=["127.0.0.1", "10.96.0.1"])
        client_ca_key = pki.ec_key()
        client_ca = pki.self_signed_ca(pki.name("%s client CA" % self.name, "meshfed-lab"), client_ca_key)
        admin_key = pki.ec_key()
        admin = pki.leaf(pki.name("meshfed-lab-admin", "system:masters"), admin_key, client_ca, client_ca_key,
                         client=True)
        sa_key = pki.ec_key()
        files["serving-ca.crt"] = pki.cert_pem(serving_ca)
        files["apiserver.crt"] = pki.cert_pem(srv) + pki.cert_pem(serving_ca)
        files["apiserver.key"] = pki.key_pem(srv_key)
        files["client-ca.crt"] = pki.cert_pem(client_ca)
        files["client-ca.key"] = pki.key_pem(client_ca_key)
        files["admin.crt"] = pki.cert_pem(admin)
        files["admin.key"] = pki.key_pem(admin_key)
        files["sa.key"] = pki.key_pem(sa_key)
        files["sa.pub"] = pki.public_key_pem(sa_key)
        for fname, data in files.items():
            p = d / fname
            p.write_bytes(data)
            if fname.endswith(".key"):
                p.chmod(0o600)

    def _write_kubeconfig(self):
        def b64(p):
            return base64.b64encode(Path(p).read_bytes()).decode()

        user = "%s-admin" % self.name
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": self.name, "cluster": {"server": self.server,
                                                         "certificate-authority-data": b64(self.ca_file)}}],
            "users": [{"name": user, "user": {"client-certificate-data": b64(self.cert_file),
                                              "client-key-data": b64(self.key_file)}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": user}}],
            "current-context": self.name,
        }
        tmp = self.kubeconfig.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        tmp.chmod(0o600)
        tmp.replace(self.kubeconfig)

    def _etcd_proc(self, bindir):
        peer = "http://127.0.0.1:%d" % self.etcd_peer_port
        client = "http://127.0.0.1:%d" % self.etcd_port
        argv = [bindir / "etcd",
                "--name=%s" % self.name,
                "--data-dir=%s" % self.etcd_data,
                "--listen-client-urls=%s" % client, "--advertise-client-urls=%s" % client,
                "--listen-peer-urls=%s" % peer, "--initial-advertise-peer-urls=%s" % peer,
                "--initial-cluster=%s=%s" % (self.name, peer),
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--snapshot-count=100000",
                "--log-level=warn"]
        return Proc("etcd", argv, self.dir / "etcd.log")

    def _apiserver_proc(self, bindir):
        p = self.pki_dir
        argv = [bindir / "kube-apiserver",
                "--etcd-servers=http://127.0.0.1:%d" % self.etcd_port,
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--secure-port=%d" % self.port,
                "--cert-dir=%s" % p,
                "--tls-cert-file=%s" % (p / "apiserver.crt"),
                "--tls-private-key-file=%s" % (p / "apiserver.key"),
                "--client-ca-file=%s" % (p / "client-ca.crt"),
                "--service-account-issuer=%s" % self.service_account_issuer,
                "--service-account-key-file=%s" % (p / "sa.pub"),
                "--service-account-signing-key-file=%s" % (p / "sa.key"),
                "--service-cluster-ip-range=%s" % SERVICE_CIDR,
                "--authorization-mode=RBAC",
                # no controller-manager: ServiceAccount admission would wait for "default" SAs
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--event-ttl=1h"]
        env = dict(os.environ)
        env.setdefault("GOMAXPROCS", str(os.cpu_count() or 2))
        return Proc("kube-apiserver", argv, self.dir / "kube-apiserver.log", env=env)

    def _spawn_all(self, bindir):
        self.etcd = self._etcd_proc(bindir).start()
        self.apiserver = self._apiserver_proc(bindir).start()

    def _probe(self):
        """'ready' | 'waiting' | 'dead:<which>'"""
        for proc in (self.etcd, self.apiserver):
            if proc is None or not proc.alive():
                return "dead:" + (proc.name if proc else "?")
        try:
            status = self.get("/readyz", timeout=2.0)[0]
            if status != 200:
                return "waiting"
            # the bootstrap controller creates "default" shortly after /readyz turns green
            status = self.get("/api/v1/namespaces/default", timeout=2.0)[0]
            return "ready" if status == 200 else "waiting"
        except (OSError, http.client.HTTPException, ssl.SSLError):
            return "waiting"

    def _failure(self, why):
        parts = ["lab cluster %s (%s) failed: %s" % (self.name, self.dir, why)]
        for proc in (self.etcd, self.apiserver):
            if proc is not None:
                parts.append("--- %s (%s) log tail:\n%s" % (proc.name, proc.log_path, proc.log_tail()))
        return LabError("\n".join(parts))

    def _wait_ready(self, deadline):
        while True:
            state = self._probe()
            if state == "ready":
                return
            if state.startswith("dead:"):
                raise self._failure("%s exited" % state[5:])
            if time.monotonic() > deadline:
                raise self._failure("not ready within the timeout")
            time.sleep(0.1)

    def boot(self, bindir, timeout, attempts=3):
        """Create PKI + kubeconfig, start etcd and kube-apiserver, wait until ready."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        for attempt in range(1, attempts + 1):
            self.etcd_port, self.etcd_peer_port, self.port = free_ports(3)
            self._ssl_ctx = self._shared_client = None
            self._write_kubeconfig()
            if self.etcd_data.exists():
                shutil.rmtree(self.etcd_data)
            self._spawn_all(bindir)
            try:
                self._wait_ready(time.monotonic() + timeout)
                return self
            except LabError:
                conflict = _port_conflict(self.etcd, self.apiserver)
                self.stop()
                if not conflict or attempt == attempts:
                    raise
        return self

    def stop_apiserver(self):
        """Stop only kube-apiserver (etcd and its data stay; the port is kept for start_apiserver)."""
        if self.apiserver is not None:
            self.apiserver.stop()

    def start_apiserver(self, timeout=60.0):
        """(Re)start kube-apiserver on the same port against the same etcd and wait until ready."""
        if self.apiserver is not None and self.apiserver.alive():
            return self
        if self.etcd is None or not self.etcd.alive():
            raise LabError("cluster %s: etcd is not running (was the cluster stopped?)" % self.name)
        deadline = time.monotonic() + timeout
        while True:  # the old listener may linger for a moment
            self.apiserver = self._apiserver_proc(self.lab.bin_dir).start()
            try:
                self._wait_ready(deadline)
                return self
            except LabError:
                conflict = _port_conflict(self.apiserver)
                self.apiserver.stop()
                if not conflict or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    @property
    def apiserver_running(self):
        return self.apiserver is not None and self.apiserver.alive()

    @property
    def running(self):
        return self.apiserver_running and self.etcd is not None and self.etcd.alive()

    def stop(self):
        if self.apiserver is not None:
            self.apiserver.stop()
        if self.etcd is not None:
            self.etcd.stop()

    def pids(self):
        return {p.name: p.pid for p in (self.etcd, self.apiserver) if p is not None and p.alive()}

    def rss_kib(self):
        """Resident set size (VmRSS, KiB) of {'kube-apiserver': n, 'etcd': n}."""
        return {p.name: p.rss_kib() for p in (self.apiserver, self.etcd) if p is not None}


# --------------------------------------------------------------------------------------------------
# lab
# --------------------------------------------------------------------------------------------------
_labs = set()
_labs_lock = threading.Lock()
_handlers_installed = False


def stop_all_labs():
    with _labs_lock:
        labs = list(_labs)
    for lab in labs:
        try:
            lab.stop()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print("meshfed lab: stop failed: %s" % e, file=sys.stderr)


atexit.register(stop_all_labs)


def _stop_all_labs_from_signal():
    """stop_all_labs for a signal handler: no lock, no thread pool. The code the signal interrupted may hold
    a lock that those need (a ThreadPoolExecutor.submit holds concurrent.futures' global lock while its
    thread starts), and the handler runs on that same thread: waiting for it would never end."""
    procs = [p for lab in list(_labs) for c in list(lab.clusters) for p in (c.apiserver, c.etcd) if p is not None]
    for proc in procs:  # API servers first, then etcds, all signalled before any wait
        proc.terminate()
    for proc in procs:
        proc.stop(timeout=5.0)


def _install_signal_handlers():
    """Stop every lab on SIGTERM/SIGINT, then defer to whatever handler was there before
    (SIGINT's default raises KeyboardInterrupt; SIGTERM's default terminates the process)."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        prev = signal.getsignal(sig)
        if prev == signal.SIG_IGN:  # e.g. SIGINT of a background job: respect it
            continue

        def handler(signum, frame, prev=prev):
            _stop_all_labs_from_signal()
            if callable(prev):
                prev(signum, frame)  # e.g. default_int_handler -> KeyboardInterrupt
            elif prev == signal.SIG_IGN:
                return
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


class Lab:
    """A set of lab clusters under one work directory. See the module docstring."""

    def __init__(self, workdir, bin_dir=None):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self.clusters = []
        self._lock = threading.Lock()
        self._stopped = False
        with _labs_lock:
            _labs.add(self)
        _install_signal_handlers()

    @property
    def bin_dir(self):
        if self._bin_dir is None:
            self._bin_dir = binaries()
        return self._bin_dir

    def _new_dir(self, name):
        with self._lock:
            d, n = self.workdir / name, 1
            while d.exists():
                n += 1
                d = self.workdir / ("%s-%d" % (name, n))
            d.mkdir(parents=True)
            return d

    def start(self, names, timeout=None):
        """Start one cluster per name (in parallel) and return them, ready, in the order given.

        Names may repeat across calls (each call gets its own processes and directory).
        ``timeout`` (seconds, per cluster) defaults to 60 + 10 per cluster started together.
        """
        names = list(names)
        if len(set(names)) != len(names):
            raise ValueError("duplicate cluster names in one start(): %r" % names)
        bindir = self.bin_dir
        self._stopped = False
        timeout = timeout or (60.0 + 10.0 * len(names))
        clusters = [Cluster(self, n, self._new_dir(n)) for n in names]
        with self._lock:
            self.clusters.extend(clusters)
        errors = []
        with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as ex:
            futs = [ex.submit(c.boot, bindir, timeout) for c in clusters]
            for f in futs:
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001 - collected, re-raised below
                    errors.append(e)
        if errors or self._stopped:
            self.stop_clusters(clusters)
            if errors:
                raise LabError("\n\n".join(str(e) for e in errors))
            raise LabError("lab stopped while starting")
        return clusters

    def stop_clusters(self, clusters, remove_data=False):
        """Stop the given clusters (e.g. at the end of a test module), in parallel; logs are kept."""
        clusters = list(clusters)
        for c in clusters:  # API servers first, all at once, then their etcds
            if c.apiserver is not None:
                c.apiserver.terminate()
        with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as ex:
            list(ex.map(lambda c: c.stop(), clusters))
        for c in clusters:
            if remove_data and c.etcd_data.exists():
                shutil.rmtree(c.etcd_data, ignore_errors=True)
        with self._lock:
            self.clusters = [c for c in self.clusters if c not in clusters]

    def stop(self, remove_data=False):
        """Kill every process of this lab (idempotent)."""
        self._stopped = True
        with self._lock:
            clusters = list(self.clusters)
        self.stop_clusters(clusters, remove_data=remove_data)

    def close(self):
        self.stop()
        with _labs_lock:
            _labs.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
