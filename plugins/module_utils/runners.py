# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each module does behind its thin ``main()``, and the modules' one failure path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils import k8s
from ansible_collections.meshfed.istio.plugins.module_utils.deps import require
from ansible_collections.meshfed.istio.plugins.module_utils.errors import MeshfedError
from ansible_collections.meshfed.istio.plugins.module_utils.facts import gather
from ansible_collections.meshfed.istio.plugins.module_utils.planner import plan
from ansible_collections.meshfed.istio.plugins.module_utils.reconcile import Reconciler


def run_module(module, run_class):
    """Exit with what ``run_class(module)()`` returns; a MeshfedError fails with its details and the progress."""
    run = run_class(module)
    try:
        module.exit_json(**run())
    except MeshfedError as exc:
        module.fail_json(msg=str(exc), **dict(exc.details, **run.progress()))


class _Run(object):
    client = None

    def __init__(self, module):
        require(module)
        self.module, self.params = module, module.params

    def _connect(self, cluster):
        self.client = k8s.connect(self.params, cluster)
        return self.client

    def progress(self):
        return dict(api_calls=self.client.calls if self.client else {})


class FactsRun(_Run):
    """cluster_facts: the card of one cluster."""

    def __call__(self):
        params = dict(self.params, gateway_namespace=self.params["gateway_namespace"] or self.params["istio_namespace"])
        if params["gateway_port"] is not None and not 1 <= params["gateway_port"] <= 65535:
            raise MeshfedError("gateway_port %s is not a port number (1-65535)" % params["gateway_port"],
                               cluster=params["cluster"], field="gateway_port")
        card = gather(self._connect(params["cluster"]), params)
        for warning in card["warnings"]:
            self.module.warn(warning)
        return dict(changed=False, card=card, **self.progress())


class FederationRun(_Run):
    """federation: plan from the cards, then converge the local cluster onto the plan."""

    reconciler = None

    def __call__(self):
        params, card = self.params, self.params["local"]
        name, version = card.get("name") or "(unnamed cluster)", params["istio_api_version"]
        namespace = params["istio_namespace"] or card.get("istio_namespace") or "istio-system"
        self.reconciler = rec = Reconciler(self._connect(name), name, namespace, api_version=version,
                                           check_mode=self.module.check_mode, want_diff=self.module._diff)
        local_hosts = ()
        if params["check_local_services"]:
            local_hosts = rec.local_hostnames(card.get("cluster_domain") or card.get("trust_domain"))
        desired = plan(card, params["peers"], unreachable=params["unreachable_peers"], namespace=namespace,
                       api_version=version, local_hostnames=local_hosts, export=params["export_gateway"])
        rec.check_istiod(rec.converge(desired), params["istiod_deployment"])
        for warning in rec.warnings:
            self.module.warn(warning)
        return dict(self.progress(), **(dict(diff=rec.diffs) if self.module._diff else {}))

    def progress(self):
        rec = self.reconciler
        return dict(super(FederationRun, self).progress(), changed=bool(rec and rec.changed),
                    summary=rec.summary if rec else {})
