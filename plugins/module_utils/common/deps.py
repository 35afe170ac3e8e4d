# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""The third-party libraries, imported once; modules report a missing one with its traceback."""

import traceback

from ansible.module_utils.basic import missing_required_lib

__all__ = ["InvalidSignature", "MISSING", "ed25519", "require", "serialization", "x509", "yaml"]
MISSING = {}  # pip name -> import traceback
# The transport (urllib3) is imported by kube/kubeconfig.py, which registers it here when missing.
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
