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


def _check_members(members, name):
    if not isinstance(members, (list, tuple)):
        raise AnsibleFilterError("%s: members must be a list of inventory names" % name)


def federation_cards(hostvars, members, card_var="meshfed_card", in_run=None, fetch_var="meshfed_peer_metadata"):
    """What the apply phase needs of each member (and of each host in the run), read from ``hostvars``
    once: ``{host: {cluster, card or None, leaving, in_run, refused}}``.

    Reading a host's variables from ``hostvars`` templates them; doing it once per play (run_once)
    instead of once per member on every host keeps the apply phase linear in the number of clusters.
    Feed the result to ``federation_split`` on each host."""
    _check_members(members, "federation_cards")
    in_run = set(members if in_run is None else in_run)
    out = {}
    for host in sorted(set(members) | in_run):
        if host not in hostvars:
            raise AnsibleFilterError("federation_cards: %s is not an inventory host" % host)
        hvars = hostvars[host]
        card = hvars.get(card_var)
        card = card if isinstance(card, dict) and card.get("name") else None
        fetched, refused = hvars.get(fetch_var), None
        if isinstance(fetched, dict) and fetched.get("failed"):  # why the peer's metadata was refused
            refused = {"reason": fetched.get("reason") or "fetch", "message": fetched.get("msg") or ""}
        out[host] = {"cluster": card["name"] if card else (hvars.get("meshfed_cluster_name") or host), "card": card,
                     "leaving": hvars.get("meshfed_state") == "absent", "in_run": host in in_run, "refused": refused}
    return out


def federation_split(cards, members, current):
    """From ``federation_cards``: this host's card (``local``), the other members' cards (``peers``),
    the members in this run without one (``unreachable``, with ``refused`` reasons), those leaving
    (``leaving``) and every member's cluster name (``members``). Fails, naming the cluster, when this
    host is in the cards without a card (its gather phase did not run)."""
    _check_members(members, "federation_split")
    entry = cards.get(current) or {}
    if entry and not entry.get("card"):
        raise AnsibleFilterError("%s: no card gathered for this cluster in this run; run the gather phase "
                                 "(meshfed_phase=gather) on every member before the apply phase." % entry["cluster"])
    return dict(_split(cards, members, current), local=entry.get("card"))


def _split(cards, members, current):
    out = {"peers": [], "unreachable": [], "leaving": [], "members": [], "refused": {}}
    for host in sorted(set(members)):
        if host not in cards:
            raise AnsibleFilterError("federation_split: %s is not in the cards (federation_cards over the same members)"
                                     % host)
        entry = cards[host]
        out["members"].append(entry["cluster"])
        if host == current:
            continue
        if entry["leaving"]:
            out["leaving"].append(entry["cluster"])
        elif entry["card"]:
            out["peers"].append(entry["card"])
        elif entry["in_run"]:
            out["unreachable"].append(entry["cluster"])
            if entry["refused"]:
                out["refused"][entry["cluster"]] = entry["refused"]
    out["peers"].sort(key=lambda c: c["name"])
    for key in ("unreachable", "leaving", "members"):
        out[key].sort()
    return out


def federation_peers(hostvars, members, current, card_var="meshfed_card", in_run=None,
                     fetch_var="meshfed_peer_metadata"):
    """``federation_split`` of ``current`` straight from ``hostvars`` (without ``local``): reads every
    member's variables, so per host it costs what ``federation_cards`` costs once."""
    _check_members(members, "federation_peers")
    return _split(federation_cards(hostvars, members, card_var, in_run, fetch_var), members, current)


class FilterModule(object):
    def filters(self):
        return {"federation_peers": federation_peers, "federation_cards": federation_cards,
                "federation_split": federation_split}
