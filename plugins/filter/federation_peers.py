# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: federation_peers
short_description: Split federation members into gathered, unreachable and leaving peers
version_added: 0.1.0
author:
  - meshfed.istio contributors (@meshfed)
description:
  - From O(_input) (C(hostvars)), the federation members and the current host, returns the cards of
    the other members that gathered their facts this run (C(peers)), the names of members in this run
    that did not (C(unreachable)), of members marked C(meshfed_state=absent) (C(leaving)), and of all
    members (C(members)). The federation module keeps what it holds for unreachable peers and for known
    peers not in this run; it removes only leaving peers.
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
  in_run:
    description:
      - Inventory names of the hosts of this run (usually C(ansible_play_hosts_all)). A member outside it
        (left out by C(--limit)) is not unreachable, merely not in this run. Defaults to O(members).
    type: list
    elements: str
  fetch_var:
    description:
      - Host var registered by M(meshfed.istio.peer_metadata) for a metadata peer; its failure (why the peer's
        metadata was refused) is reported in C(refused).
    type: str
    default: meshfed_peer_metadata
"""

EXAMPLES = r"""
- name: Peers of this cluster
  ansible.builtin.set_fact:
    federation: "{{ hostvars | meshfed.istio.federation_peers(ansible_play_hosts_all, inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description:
    - C(peers) (list of cards), C(unreachable), C(leaving) and C(members) (lists of cluster names), sorted by name.
    - C(refused) maps each unreachable metadata peer whose metadata was refused to C({reason, message}).
  type: dict
"""

from ansible.errors import AnsibleFilterError


def _cluster_name(hvars, host, card_var):
    card = hvars.get(card_var)
    if isinstance(card, dict) and card.get("name"):
        return card["name"]
    return hvars.get("meshfed_cluster_name") or host


def _refusal(hvars, fetch_var):
    fetched = hvars.get(fetch_var)
    if isinstance(fetched, dict) and fetched.get("failed"):
        return {"reason": fetched.get("reason") or "fetch", "message": fetched.get("msg") or ""}
    return None


def federation_peers(hostvars, members, current, card_var="meshfed_card", in_run=None,
                     fetch_var="meshfed_peer_metadata"):
    if not isinstance(members, (list, tuple)):
        raise AnsibleFilterError("federation_peers: members must be a list of inventory names")
    in_run = set(members if in_run is None else in_run)
    out = {"peers": [], "unreachable": [], "leaving": [], "members": [], "refused": {}}
    for host in sorted(set(members)):
        if host not in hostvars:
            raise AnsibleFilterError("federation_peers: %s is not an inventory host" % host)
        hvars = hostvars[host]
        name = _cluster_name(hvars, host, card_var)
        out["members"].append(name)
        if host == current:
            continue
        card = hvars.get(card_var)
        if hvars.get("meshfed_state") == "absent":
            out["leaving"].append(name)
        elif isinstance(card, dict) and card.get("name"):
            out["peers"].append(card)
        elif host in in_run:
            out["unreachable"].append(name)
            if _refusal(hvars, fetch_var):
                out["refused"][name] = _refusal(hvars, fetch_var)
    out["peers"].sort(key=lambda c: c["name"])
    for key in ("unreachable", "leaving", "members"):
        out[key].sort()
    return out


class FilterModule(object):
    def filters(self):
        return {"federation_peers": federation_peers}
