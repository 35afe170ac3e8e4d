# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""REST paths of the Kubernetes API (pure string work, shared by the planner's kinds and the readers)."""


def core_path(resource, namespace=None, name=None):
    return api_path("/api/v1", resource, namespace, name)


def api_path(prefix, resource, namespace=None, name=None, subresource=None):
    """REST path under ``prefix`` (``/api/v1`` or ``/apis/<group>/<version>``)."""
    parts = [prefix] + (["namespaces", namespace] if namespace else []) + [resource]
    return "/".join(parts + [part for part in (name, subresource) if part])
