"""`make demo`: two real lab clusters (kube-apiserver + etcd on loopback) seeded with the seed scenario,
federated by playbooks/federate.yml, then the objects it wrote, read back from the API servers."""

import sys
import tempfile
from pathlib import Path

import yaml

from tests.integration import kube
from tests.integration.ansible_run import run_playbook
from tests.lab.inventory import write_inventory
from tests.lab.lab import Lab
from tests.lab.seed import seed_cluster


def show(title, obj):
    print("\n--- %s" % title)
    print(yaml.safe_dump(obj, sort_keys=False, width=120).rstrip())


def main():
    workdir = Path(tempfile.mkdtemp(prefix="meshfed-demo-"))
    lab = Lab(workdir)
    try:
        print("starting two API servers (cluster-a, cluster-b) on loopback ...", flush=True)
        clusters = lab.start(["cluster-a", "cluster-b"])
        for c in clusters:
            seed_cluster(c)
            print("  %s: %s  kubeconfig %s" % (c.name, c.server, c.kubeconfig))
        a, b = clusters
        inventory = write_inventory(clusters, workdir / "inventory.yml") or workdir / "inventory.yml"
        print("\n$ ansible-playbook playbooks/federate.yml -i %s" % inventory, flush=True)
        run = run_playbook(inventory)
        print(run.stdout)
        if run.rc != 0:
            print(run.stderr, file=sys.stderr)
            return run.rc
        se = kube.se_by_host(a)["bar.xyz.svc.cluster-b.local"]
        show("cluster-a: ServiceEntry %s/%s" % (se["metadata"]["namespace"], se["metadata"]["name"]),
             {"metadata": {"labels": se["metadata"]["labels"]}, "spec": se["spec"]})
        fed = kube.federations(a)["cluster-b"]
        show("cluster-a: IstioFederation cluster-b", {"spec": fed["spec"], "status": {
            "metadataCache": {k: v for k, v in fed["status"]["metadataCache"].items() if k != "public"}}})
        show("cluster-a: mesh config caCertificates (ConfigMap istio-system/istio)", [
            {"trustDomains": e.get("trustDomains"), "pem": e["pem"].splitlines()[1][:40] + "..."}
            for e in kube.mesh(a).get("caCertificates") or []])
        show("cluster-b: export Gateway", kube.gateways(b)["meshfed-export"]["spec"])
        print("\n$ ansible-playbook playbooks/federate.yml -i %s   # again: nothing to change" % inventory)
        again = run_playbook(inventory)
        print("\n".join(line for line in again.stdout.splitlines() if "changed=" in line))
        return again.rc
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
