# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)


class ModuleDocFragment(object):
    """Attributes shared by the read-only modules (use as C(meshfed.istio.attributes.info_module))."""

    INFO_MODULE = r"""
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
"""
