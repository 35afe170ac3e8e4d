# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""What each module does behind its thin ``main()``, and the modules' one failure path."""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshfed.istio.plugins.module_utils.kube import client as k8s
from ansible_collections.meshfed.istio.plugins.module_utils.kube.kubeconfig import kubeconfig_secrets
from ansible_collections.meshfed.istio.plugins.module_utils.metadata import fetch, publish
from ansible_collections.meshfed.istio.plugins.module_utils.pki import jose
from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import require
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError, MeshfedError, PlanError, about, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.gather.facts import gather
from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import valid_port
from ansible_collections.meshfed.istio.plugins.module_utils.plan import federations
from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan, validate_card
from ansible_collections.meshfed.istio.plugins.module_utils.reconcile.reconciler import Reconciler, is_owned
from ansible_collections.meshfed.istio.plugins.module_utils.common.times import iso, utcnow
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import kind_path, object_ref
from ansible_collections.meshfed.istio.plugins.module_utils.render.deliver import Previous, Rendering


class MeshfedModule(AnsibleModule):
    """AnsibleModule that also masks the secrets inside a ``kubeconfig`` dict (tokens, keys) in every result, failure and
    log line, argument-validation failures included; masking the whole option would star its names and paths out of every message."""

    def _mask_kubeconfig(self):
        self.no_log_values.update(kubeconfig_secrets((self.params or {}).get("kubeconfig")))

    def _log_invocation(self):
        self._mask_kubeconfig()
        super()._log_invocation()

    def _return_formatted(self, kwargs):
        self._mask_kubeconfig()
        super()._return_formatted(kwargs)


def run_module(module, run_class):
    """Exit with what ``run_class(module)()`` returns; a MeshfedError fails with its details and the progress."""
    run = run_class(module)
    try:
        module.exit_json(**run())
    except MeshfedError as exc:
        module.fail_json(msg=str(exc), **dict(exc.details, **run.progress()))


class _Run:
    client = None

    def __init__(self, module):
        require(module)
        self.module, self.params = module, module.params

    def _connect(self, cluster, pool_size=1):
        """The cluster's client; a loud warning when it does not verify the API server's certificate."""
        self.client = k8s.connect(self.params, cluster, pool_size=pool_size)
        if self.client.unverified:
            self.module.warn(prefixed(cluster, "TLS verification of the API server %s is OFF (%s): anyone on the path "
                                      "can read the credentials and forge the answers; give the CA (ca_cert or the "
                                      "kubeconfig's certificate-authority) instead"
                                      % (self.client.server, self.client.unverified)))
        return self.client

    def progress(self):
        """What every result and failure reports of the connection: requests per verb, TLS verification."""
        if not self.client:
            return dict(api_calls={})
        return dict(api_calls=self.client.calls, tls_verification=not self.client.unverified)

    def _private_key(self, name, generate=False):
        """``(key, generated)`` from the PEM ``name``, else the file ``<name>_file``; ``(None, False)`` without either."""
        if self.params[name]:
            return jose.load_private_key(self.params[name], name), False
        if self.params[name + "_file"]:
            return publish.read_key(self.params[name + "_file"], name + "_file", generate, self.module.check_mode)
        return None, False


class FactsRun(_Run):
    """cluster_info: the card of one cluster."""

    def __call__(self):
        params = dict(self.params, gateway_namespace=self.params["gateway_namespace"] or self.params["istio_namespace"])
        cluster = params["cluster"]
        if params["gateway_port"] is not None and not valid_port(params["gateway_port"]):
            raise MeshfedError("gateway_port %s is not a port number (1-65535)" % params["gateway_port"],
                               cluster=cluster, field="gateway_port")
        card = gather(self._connect(cluster), params)
        for warning in card["warnings"]:
            self.module.warn(warning)
        # {peer: issuedAt} cached by this cluster's IstioFederations (peer_metadata's not_before); {} before the CRD
        try:
            items = self.client.list(kind_path("IstioFederation", None, "v1"), what="list IstioFederation")
        except K8sError as exc:
            if exc.status != 404:
                raise
            items = []
        accepted = federations.last_accepted(dict((i["metadata"]["name"], i) for i in items if is_owned(i, cluster)))
        return dict(changed=False, card=card, accepted_metadata=accepted, **self.progress())


class FederationRun(_Run):
    """federation: membership from the IstioFederation objects, plan from the cards, converge onto the plan."""

    reconciler = None

    def __call__(self):
        params, card = self.params, self.params["local"]
        name = card.get("name") or "(unnamed cluster)"
        namespace = params["istio_namespace"] or card.get("istio_namespace") or "istio-system"
        rec, existing = self._read(name, namespace)
        members = membership(params, sorted(rec.federations(existing)))
        rec.summary.update((k, members[k]) for k in ("not_in_run", "left", "pruned_absent"))
        desired = self._plan(rec, members, existing, namespace)
        deployment = params["istiod_deployment"] or (card.get("istiod") or {}).get("deployment") or "istiod"
        warnings, result = self._deliver(rec, desired, existing, deployment)
        for warning in warnings:
            self.module.warn(warning)
        # per peer: its state this run and what this cluster holds of it (trust domain, roots, imports, cache time)
        peers = [federations.view(peer, state, existing.get(("IstioFederation", None, peer)), desired["statuses"].get(peer))
                 for key, state in federations.PEER_STATES.items() for peer in members[key]]
        view = {"cluster": card.get("name"), "state": params["state"], "peers": sorted(peers, key=lambda p: p["name"])}
        return dict(self.progress(), federation=view, **result)

    def _read(self, name, namespace):
        """The reconciler and what is on the cluster."""
        params, card, writes = self.params, self.params["local"], self.params["write_concurrency"]
        if writes < 1:
            raise MeshfedError("write_concurrency must be at least 1", cluster=name, field="write_concurrency")
        self.reconciler = Reconciler(self._connect(name, writes), name, namespace, api_version=params["istio_api_version"],
                                     check_mode=self.module.check_mode, want_diff=self.module._diff,
                                     write_concurrency=writes, mesh_configmap=card.get("mesh_configmap") or "istio",
                                     trust_mode=params["trust_mode"], revision=card.get("revision"))
        return self.reconciler, self.reconciler.list_existing()

    def _deliver(self, rec, desired, existing, deployment):
        """Converge onto the plan; ``(warnings, result keys)``."""
        rec.check_istiod(rec.converge(desired, existing), deployment)
        return rec.warnings, dict(diff=rec.diffs) if self.module._diff else {}

    def _plan(self, rec, members, existing, namespace):
        """The desired state: the peers of this run (none when this cluster leaves), imports as configured."""
        params, card, present = self.params, self.params["local"], self.params["state"] == "present"
        local_hosts = ()
        if params["check_local_services"] and present:
            peer_hosts = set(svc["hostname"] for peer in params["peers"] for svc in peer.get("public_services") or [])
            local_hosts = rec.local_hostnames(card.get("cluster_domain") or card.get("trust_domain"), peer_hosts)
        imports = {"namespaces": params["import_namespaces"], "hosts": params["import_hosts"],
                   "address_range": params["dns_address_range"], "addresses": rec.held_addresses(existing)}
        return plan(card, params["peers"] if present else [], namespace=namespace, local_hostnames=local_hosts,
                    unreachable=members["unreachable"] + members["not_in_run"] if present else [],
                    api_version=params["istio_api_version"], export=present and params["export_gateway"],
                    refused=params["refused_peers"], imports=imports, other_gateways=rec.other_gateways(existing),
                    current_statuses=dict((n, obj.get("status")) for n, obj in rec.federations(existing).items()),
                    published=present and params["metadata_published"])

    def progress(self):
        rec = self.reconciler
        out = dict(super().progress(), changed=bool(rec and rec.changed), summary=rec.summary if rec else {})
        if rec and rec.trust is not None:
            out["trust"] = rec.trust
        return out


class RenderRun(FederationRun):
    """federation with ``delivery: render``: the same plan from the same reads (read-only credentials), written as files for
    Argo CD / Flux; the directory's state file stands in for what apply mode keeps on the cluster (its objects, their status)."""

    rendering = previous = None

    def _read(self, name, namespace):
        params, card = self.params, self.params["local"]
        with about(name):
            if not params["render_dir"]:
                raise MeshfedError("delivery render needs render_dir", field="render_dir")
            self.previous = Previous(params["render_dir"], name)
        self.reconciler = Reconciler(self._connect(name), name, namespace, api_version=params["istio_api_version"],
                                     mesh_configmap=card.get("mesh_configmap") or "istio", trust_mode="values",
                                     revision=card.get("revision"))
        return self.reconciler, render_existing(self.reconciler.list_existing(), self.previous, name)

    def _deliver(self, rec, desired, existing, deployment):
        """Render the plan; objects others own are not rendered but warned about."""
        trust_mesh = rec.trust_values(desired)
        objects, conflicts = rec.deliverable(desired, existing, "not rendered")
        self.rendering = out = Rendering(self.params["render_dir"], rec.cluster, self.previous)
        with about(rec.cluster):
            out.plan(out.desired_files(desired, objects, rec.trust, iso(utcnow())), self.module._diff)
            if out.changed and not self.module.check_mode:
                out.write()
        rec.check_istiod(trust_mesh, deployment)
        out.summary["conflicts"] = [object_ref(obj) for obj in conflicts]
        warnings = list(dict.fromkeys((desired.get("warnings") or []) + rec.warnings))
        return warnings, dict(render_dir=self.params["render_dir"], **(dict(diff=out.diffs) if self.module._diff else {}))

    def progress(self):
        out = super().progress()
        if self.rendering is not None:
            out.update(changed=self.rendering.changed, summary=dict(out["summary"], **self.rendering.summary))
        return out


def federation_run(module):
    """The federation module's run: RenderRun with ``delivery: render``, else FederationRun."""
    return (RenderRun if module.params.get("delivery") == "render" else FederationRun)(module)


def render_existing(cluster_objects, previous, cluster):
    """What render mode plans against: objects others own, from the cluster (conflicts, other Gateways); its own from
    the rendered directory, or, on the first render (no state yet), those apply mode left: the cluster's as they are."""
    if not previous.has_state:
        return dict(cluster_objects)
    return {**{key: obj for key, obj in cluster_objects.items() if not is_owned(obj, cluster)}, **previous.existing()}


def membership(params, known):
    """Sort the peers: gathered, unreachable, not in this run (kept), leaving and pruned (removed). Only intent removes a
    known peer: ``leaving_peers`` (a host marked ``state: absent``), ``state: absent`` here (this cluster leaves: every
    peer goes), or ``prune_absent`` for known peers that are not ``members`` at all (never for members limited out of the run)."""
    gathered = set(p.get("name") for p in params["peers"])
    leaving = set(params["leaving_peers"])
    unreachable = set(params["unreachable_peers"]) - leaving
    absent = set(known) - gathered - leaving - unreachable
    pruned = set(p for p in absent if params["prune_absent"] and p not in set(params["members"] or []))
    if params["state"] == "absent":
        leaving, unreachable, absent, pruned = leaving | set(known) | gathered | unreachable, set(), set(), set()
    return {"gathered": sorted(gathered - leaving), "unreachable": sorted(unreachable), "not_in_run": sorted(absent - pruned),
            "left": sorted(leaving & (set(known) | gathered)), "pruned_absent": sorted(pruned)}


class PublishRun(_Run):
    """federation_metadata: this cluster's signed metadata, written into a directory."""

    def __call__(self):
        params, card = self.params, self.params["card"]
        name = card.get("name") or "(unnamed cluster)"
        with about(name):
            if validate_card(card, role="local"):
                raise PlanError(validate_card(card, role="local"))
            if params["validity"] < 120:
                raise MeshfedError("validity %d is shorter than two minutes" % params["validity"], field="validity")
            key, generated = self._private_key("key", params["generate_key"])
            if key is None:  # key: "" passes required_one_of
                raise MeshfedError("key is empty and key_file is not set; give the signing key", field="key")
            cluster_uuid = params["cluster_uuid"] or publish.default_cluster_uuid(name)
            existing = publish.read_published(params["dest"])
            files, changed = publish.plan_publication(card, cluster_uuid, key, existing, validity=params["validity"],
                                                      renew_before=params["renew_before"])
        if changed and not self.module.check_mode:
            publish.write_published(params["dest"], files)
        public = json.loads(files[publish.PUBLIC_PATH].decode("utf-8"))
        result = dict(changed=changed or generated, cluster_uuid=cluster_uuid,
                      signer=jose.key_fingerprint(key.public_key()), public_key=jose.public_key_pem(key.public_key()),
                      expires_at=public[publish.EXTENSION]["expiresAt"],
                      files=[os.path.join(params["dest"], rel) for rel in publish.ALL_PATHS])
        if changed and self.module._diff:
            before, after = ("".join((docs.get(rel) or b"").decode("utf-8", "replace")
                                     for rel in (publish.PUBLIC_PATH, publish.PRIVATE_PATH)) for docs in (existing, files))
            result["diff"] = {"before": before, "after": after, "before_header": params["dest"],
                              "after_header": params["dest"]}
        return result


class PeerMetadataRun(_Run):
    """peer_metadata: a peer's card from its published metadata (nothing written)."""

    def __call__(self):
        params = self.params
        with about(params["cluster"]):
            spec = fetch.PeerSpec(params["cluster"], params["url"] or params["path"], protocol=params["protocol"],
                                  signer_key=params["signer_key"], root_sha256=params["root_sha256"],
                                  ca_pem=fetch.pem_or_file(params["ca_cert"], "ca_cert"),
                                  validate_certs=params["validate_certs"], trust_domain=params["trust_domain"])
            not_before = publish.parse_time(params["not_before"], "not_before") if params["not_before"] else None
            fetcher = fetch.Fetcher(spec.location, spec.ca_pem, spec.validate_certs, timeout=params["timeout"])
            name = params["client_name"]
            local_uuid = params["client_uuid"] or (publish.default_cluster_uuid(name) if name else None)
            card = fetch.fetch_peer(spec, local_uuid=local_uuid, local_key=self._private_key("client_key")[0],
                                    not_before=not_before, fetcher=fetcher)
        for warning in card["warnings"]:
            self.module.warn(warning)
        return dict(changed=False, card=card)
