"""Istio's CustomResourceDefinitions, taken verbatim from the published ``istio.io/api`` Go module.

    path = istio_crds_path()          # ~/.cache/meshfed/lab/istio-api-v1.31.4/crds.yaml (Go needed once)
    install_crd_file(cluster, path)   # server-side apply every CRD in the file, wait for Established
    install_all(cluster)              # Istio CRDs + meta/crds/istiofederation.yaml when present

The YAML is cached per version so later runs need no Go toolchain. Override the version with
MESHFED_ISTIO_API_VERSION and the cache root with MESHFED_LAB_CACHE (same as build.sh).
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml

from tests.lab import kubeapi

# v1.31.4 ships kubernetes/customresourcedefinitions.gen.yaml (checked when pinning).
ISTIO_API_VERSION = os.environ.get("MESHFED_ISTIO_API_VERSION", "v1.31.4")
CRD_FILE_IN_MODULE = "kubernetes/customresourcedefinitions.gen.yaml"
REPO = Path(__file__).resolve().parents[2]
FEDERATION_CRD = REPO / "meta" / "crds" / "istiofederation.yaml"

_lock = threading.Lock()
_docs_cache = {}


class CRDError(RuntimeError):
    pass


def cache_root():
    root = os.environ.get("MESHFED_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "meshfed", "lab")
    return Path(root)


def istio_crds_path(version=None, verbose=True):
    """Path of the cached Istio CRD YAML for ``version``; downloads the module with Go on a cold cache."""
    version = version or ISTIO_API_VERSION
    dest = cache_root() / ("istio-api-%s" % version) / "crds.yaml"
    if dest.is_file():
        return dest
    with _lock:
        if dest.is_file():
            return dest
        if shutil.which("go") is None:
            raise CRDError("%s is not cached and Go is not installed (needed once to fetch istio.io/api@%s)"
                           % (dest, version))
        if verbose:
            print("[lab-crds] fetching istio.io/api@%s with go mod download" % version, flush=True)
        env = dict(os.environ)
        env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=mod").strip()
        with tempfile.TemporaryDirectory(prefix="meshfed-crds-") as tmp:
            proc = subprocess.run(["go", "mod", "download", "-json", "istio.io/api@%s" % version], check=False, cwd=tmp, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            info = json.loads(proc.stdout)
        except ValueError:
            info = {}
        if proc.returncode != 0 or "Dir" not in info:
            raise CRDError("go mod download istio.io/api@%s failed: %s %s"
                           % (version, info.get("Error", ""), proc.stderr.strip()))
        src = Path(info["Dir"]) / CRD_FILE_IN_MODULE
        if not src.is_file():
            raise CRDError("istio.io/api@%s has no %s" % (version, CRD_FILE_IN_MODULE))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp_dest = dest.with_name(".crds.yaml.%d" % os.getpid())
        shutil.copyfile(src, tmp_dest)
        (dest.parent / "SOURCE").write_text("istio.io/api@%s %s (%s)\n" % (version, CRD_FILE_IN_MODULE, info.get("Sum")))
        os.replace(tmp_dest, dest)  # atomic: concurrent sessions never see half a file
        return dest


def load_crds(path):
    """The CustomResourceDefinition documents of a YAML file (parsed once per path)."""
    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns)
    with _lock:
        if key not in _docs_cache:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on Istio's 0.9 MB
            docs = [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]
            crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
            if not crds:
                raise CRDError("%s holds no CustomResourceDefinition" % path)
            _docs_cache[key] = crds
        return _docs_cache[key]


def _established(obj):
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def install_crds(cluster, crds, timeout=60.0):
    """Server-side apply CRD dicts into ``cluster`` and wait until every one is Established."""
    names = []
    for crd in crds:
        kubeapi.retry(lambda crd=crd: kubeapi.apply(cluster, crd))
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [n for n in pending if not _established(kubeapi.request(
            cluster, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/%s" % n))]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise CRDError("%s: CRDs not Established after %.0fs: %s"
                           % (getattr(cluster, "name", cluster), timeout, pending))
        time.sleep(0.1)
    return names


def install_crd_file(cluster, path, timeout=60.0):
    """Install every CRD of a YAML file (server-side apply, wait for Established); returns CRD names."""
    return install_crds(cluster, load_crds(path), timeout=timeout)


def install_istio_crds(cluster, version=None, timeout=60.0):
    return install_crd_file(cluster, istio_crds_path(version), timeout=timeout)


def install_all(cluster, timeout=60.0):
    """Istio CRDs, plus the collection's IstioFederation CRD (meta/crds/istiofederation.yaml) if shipped."""
    crds = list(load_crds(istio_crds_path()))
    if FEDERATION_CRD.is_file():
        crds += load_crds(FEDERATION_CRD)
    return install_crds(cluster, crds, timeout=timeout)
