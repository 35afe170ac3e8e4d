# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The third-party libraries, imported once; modules report a missing one with its traceback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys
import traceback

from ansible.module_utils.basic import missing_required_lib

__all__ = ["InvalidSignature", "MISSING", "api_exceptions", "ed25519", "kubernetes_library", "require", "serialization",
           "urllib3", "x509", "yaml"]
MISSING = {}  # pip name -> import traceback
# The kubernetes package is imported only when a connection needs it (kubernetes_library): importing
# it costs most of a module's start-up. urllib3 comes with it.
try:
    import urllib3
except ImportError:
    urllib3 = None
    MISSING["urllib3"] = traceback.format_exc()
try:
    import yaml
except ImportError:
    yaml = None
    MISSING["PyYAML"] = traceback.format_exc()
try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
except ImportError:
    x509 = serialization = ed25519 = None
    InvalidSignature = ImportError  # never raised without the library
    MISSING["cryptography"] = traceback.format_exc()


def require(module):
    """Fail ``module`` the Ansible way when a required library is missing."""
    for name in sorted(MISSING):
        module.fail_json(msg=missing_required_lib(name), exception=MISSING[name])


def kubernetes_library():
    """The ``kubernetes`` package, imported on first use (ImportError when it is not installed)."""
    import kubernetes
    import kubernetes.client.rest  # noqa: F401 (ApiException, see api_exceptions)
    return kubernetes


def api_exceptions():
    """Exception classes the kubernetes library's client raises for HTTP errors (none unless it is in use)."""
    rest = sys.modules.get("kubernetes.client.rest")
    return (rest.ApiException,) if rest is not None else ()
