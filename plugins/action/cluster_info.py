# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Action plugin of meshfed.istio.cluster_info: its runner in the worker on the controller's own Python (plugin_utils/inprocess.py)."""

from ansible_collections.meshfed.istio.plugins.module_utils.runners import FactsRun
from ansible_collections.meshfed.istio.plugins.modules.cluster_info import argument_spec
from ansible_collections.meshfed.istio.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    argument_spec = staticmethod(argument_spec)
    run_class = FactsRun
