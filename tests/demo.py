"""`make demo`: two real lab clusters (kube-apiserver + etcd on loopback) seeded with the seed scenario,
federated by playbooks/federate.yml, then the objects it wrote, read back from the API servers.

    python -m tests.demo                                 # this checkout (make demo)
    python -m tests.demo --collections-path DIR          # the collection installed in DIR by
                                                         # ansible-galaxy (make release-check)
With --collections-path the playbook is run by its FQCN (meshfed.istio.federate) with
ANSIBLE_COLLECTIONS_PATH=DIR only, so nothing of this checkout but the lab and the tests is used.
Exit status 0 only when both runs succeed and the second changes nothing."""

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from tests.integration.ansible_run import run_playbook
from tests.lab import kubeapi
from tests.lab.inventory import write_inventory
from tests.lab.lab import Lab
from tests.lab.seed import seed_cluster


def show(title, obj):
    print("\n--- %s" % title)
    print(yaml.safe_dump(obj, sort_keys=False, width=120).rstrip())


def main(argv=None):
    opts = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    opts.add_argument("--collections-path", help="run the collection installed here (ansible-galaxy -p DIR)")
    args = opts.parse_args(argv)
    kwargs = {}
    if args.collections_path:
        kwargs = {"playbook": "meshfed.istio.federate",
                  "env": {"ANSIBLE_COLLECTIONS_PATH": str(Path(args.collections_path).resolve())}}
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
        shown = kwargs.get("playbook", "playbooks/federate.yml")
        if kwargs:
            print("\n$ export ANSIBLE_COLLECTIONS_PATH=%s" % kwargs["env"]["ANSIBLE_COLLECTIONS_PATH"])
        print("\n$ ansible-playbook %s -i %s" % (shown, inventory), flush=True)
        report = workdir / "federation.md"
        run = run_playbook(inventory, "-e", "meshfed_report_path=%s" % report, **kwargs)
        print(run.stdout)
        if run.rc != 0:
            print(run.stderr, file=sys.stderr)
            return run.rc
        se = kubeapi.se_by_host(a)["bar.xyz.svc.cluster-b.local"]
        show("cluster-a: ServiceEntry %s/%s" % (se["metadata"]["namespace"], se["metadata"]["name"]),
             {"metadata": {"labels": se["metadata"]["labels"]}, "spec": se["spec"]})
        fed = kubeapi.federations(a)["cluster-b"]
        show("cluster-a: IstioFederation cluster-b", {"spec": fed["spec"], "status": {
            "metadataCache": {k: v for k, v in fed["status"]["metadataCache"].items() if k != "public"}}})
        show("cluster-a: mesh config caCertificates (ConfigMap istio-system/istio)", [
            {"trustDomains": e.get("trustDomains"), "pem": e["pem"].splitlines()[1][:40] + "..."}
            for e in kubeapi.mesh(a).get("caCertificates") or []])
        show("cluster-b: export Gateway", kubeapi.gateways(b)["meshfed-export"]["spec"])
        print("\n--- the report (-e meshfed_report_path=%s)\n" % report)
        print(report.read_text())
        print("\n$ ansible-playbook %s -i %s   # again: nothing to change" % (shown, inventory))
        again = run_playbook(inventory, **kwargs)
        print("\n".join(line for line in again.stdout.splitlines() if "changed=" in line))
        if again.rc != 0 or any(again.changed(c.name) for c in clusters):
            print("demo: the second run failed or changed something", file=sys.stderr)
            return again.rc or 1
        return 0
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
