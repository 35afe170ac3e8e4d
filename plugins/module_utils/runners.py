# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each module does, behind its thin ``main()``: connect, gather or plan and converge, report.

A run is called once and returns the module's result; when it raises, ``failure(exc)`` gives what
``fail_json`` returns next to the message (the error's details and whatever was done until then).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils import k8s
from ansible_collections.meshfed.istio.plugins.module_utils.deps import require
from ansible_collections.meshfed.istio.plugins.module_utils.errors import MeshfedError
from ansible_collections.meshfed.istio.plugins.module_utils.facts import gather
from ansible_collections.meshfed.istio.plugins.module_utils.planner import plan
from ansible_collections.meshfed.istio.plugins.module_utils.reconcile import Reconciler


def run_module(module, run_class):
    """Run ``module`` with ``run_class``: the modules' one failure path, MeshfedError to fail_json."""
    run = run_class(module)
    try:
        module.exit_json(**run())
    except MeshfedError as exc:
        module.fail_json(msg=str(exc), **run.failure(exc))


class _Run(object):
    def __init__(self, module):
        require(module)
        self.module = module
        self.params = module.params
        self.client = None

    def _connect(self, cluster):
        self.client = k8s.connect(self.params, cluster)
        return self.client

    def _warn(self, warnings):
        for warning in warnings:
            self.module.warn(warning)

    def failure(self, exc):
        return dict(exc.details, api_calls=self.client.calls if self.client else {})


class FactsRun(_Run):
    """cluster_facts: the card of one cluster."""

    def __call__(self):
        params = dict(self.params)
        params["gateway_namespace"] = params.get("gateway_namespace") or params["istio_namespace"]
        port = params.get("gateway_port")
        if port is not None and not 1 <= port <= 65535:
            raise MeshfedError("gateway_port %s is not a port number (1-65535)" % port,
                               cluster=params["cluster"], field="gateway_port")
        card = gather(self._connect(params["cluster"]), params)
        self._warn(card["warnings"])
        return dict(changed=False, card=card, api_calls=self.client.calls)


class FederationRun(_Run):
    """federation: plan from the cards, then converge the local cluster onto the plan."""

    reconciler = None

    def __call__(self):
        params, local_card = self.params, self.params["local"]
        name = local_card.get("name") or "(unnamed cluster)"
        namespace = params.get("istio_namespace") or local_card.get("istio_namespace") or "istio-system"
        self.reconciler = rec = Reconciler(self._connect(name), name, namespace,
                                           api_version=params["istio_api_version"],
                                           check_mode=self.module.check_mode, want_diff=self.module._diff)
        local_hosts = ()
        if params["check_local_services"]:
            local_hosts = rec.local_hostnames(local_card.get("cluster_domain") or local_card.get("trust_domain"))
        desired = plan(local_card, params["peers"], unreachable=params["unreachable_peers"], namespace=namespace,
                       api_version=params["istio_api_version"], local_hostnames=local_hosts,
                       export=params["export_gateway"])
        rec.check_istiod(rec.converge(desired), params["istiod_deployment"])
        self._warn(rec.warnings)
        result = dict(changed=rec.changed, summary=rec.summary, api_calls=self.client.calls)
        if self.module._diff:
            result["diff"] = rec.diffs
        return result

    def failure(self, exc):
        rec = self.reconciler
        return dict(super(FederationRun, self).failure(exc), changed=bool(rec and rec.changed),
                    summary=rec.summary if rec else {})
