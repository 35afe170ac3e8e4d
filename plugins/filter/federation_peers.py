# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: federation_peers
short_description: Split federation members into gathered peers and unreachable ones
version_added: 0.1.0
author:
  - meshfed.istio contributors (@meshfed)
description:
  - From O(_input) (C(hostvars)), the federation members and the current host, returns the cards of
    the other members that gathered their facts this run (C(peers)) and the names of those that did
    not (C(unreachable)). The federation module keeps what it holds for the latter instead of pruning it.
  - A member's cluster name is its C(meshfed_cluster_name) host var, else its inventory name.
options:
  _input:
    description: The C(hostvars) mapping.
    type: dict
    required: true
  members:
    description: Inventory names of every federation member (usually C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  current:
    description: Inventory name of the host being applied (C(inventory_hostname)).
    type: str
    required: true
  card_var:
    description: Host var holding a member's card.
    type: str
    default: meshfed_card
"""

EXAMPLES = r"""
- name: Peers of this cluster
  ansible.builtin.set_fact:
    federation: "{{ hostvars | meshfed.istio.federation_peers(ansible_play_hosts_all, inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: C(peers) (list of cards) and C(unreachable) (list of cluster names), both sorted by name.
  type: dict
"""

from ansible.errors import AnsibleFilterError


def federation_peers(hostvars, members, current, card_var="meshfed_card"):
    if not isinstance(members, (list, tuple)):
        raise AnsibleFilterError("federation_peers: members must be a list of inventory names")
    peers = []
    unreachable = []
    for host in sorted(set(members)):
        if host == current:
            continue
        if host not in hostvars:
            raise AnsibleFilterError("federation_peers: %s is not an inventory host" % host)
        hvars = hostvars[host]
        card = hvars.get(card_var)
        if isinstance(card, dict) and card.get("name"):
            peers.append(card)
        else:
            unreachable.append(hvars.get("meshfed_cluster_name") or host)
    return {"peers": sorted(peers, key=lambda c: c["name"]), "unreachable": sorted(unreachable)}


class FilterModule(object):
    def filters(self):
        return {"federation_peers": federation_peers}
