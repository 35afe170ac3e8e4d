# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of meshfed.istio.federation: on the controller (connection local, the controller's Python) the
module's runner runs in the task worker, with no module process; anywhere else the module runs as usual.
See plugins/plugin_utils/inprocess.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils.kube.kubeconfig import kubeconfig_secrets
from ansible_collections.meshfed.istio.plugins.module_utils.runners import federation_run
from ansible_collections.meshfed.istio.plugins.modules.federation import argument_spec
from ansible_collections.meshfed.istio.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    argument_spec = staticmethod(argument_spec)
    run_class = staticmethod(federation_run)

    @staticmethod
    def secrets(params):
        return kubeconfig_secrets(params.get("kubeconfig"))
