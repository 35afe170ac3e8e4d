# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)

# Documentation of the three filters of this file: federation_peers.yml, federation_cards.yml and
# federation_split.yml beside it (a DOCUMENTATION here would be shown by ansible-doc for all three).

from ansible.errors import AnsibleFilterError


def _check_members(members, name):
    if not isinstance(members, (list, tuple)):
        raise AnsibleFilterError("%s: members must be a list of inventory names" % name)


def federation_cards(hostvars, members, card_var="meshfed_card", in_run=None, fetch_var="meshfed_peer_metadata"):
    """``{host: {cluster, card or None, leaving, in_run, refused}}`` of every member and host in the run, for
    ``federation_split`` on each host. Reading ``hostvars`` templates them: once per play (run_once) instead of once
    per member on every host keeps the apply phase linear in the number of clusters."""
    _check_members(members, "federation_cards")
    in_run = set(members if in_run is None else in_run)
    out = {}
    for host in sorted(set(members) | in_run):
        if host not in hostvars:
            raise AnsibleFilterError("federation_cards: %s is not an inventory host" % host)
        hvars = hostvars[host]
        card, fetched, refused = hvars.get(card_var), hvars.get(fetch_var), None
        card = card if isinstance(card, dict) and card.get("name") else None
        if isinstance(fetched, dict) and fetched.get("failed"):  # why the peer's metadata was refused
            refused = {"reason": fetched.get("reason") or "fetch", "message": fetched.get("msg") or ""}
        out[host] = {"cluster": card["name"] if card else (hvars.get("meshfed_cluster_name") or host), "card": card,
                     "leaving": hvars.get("meshfed_state") == "absent", "in_run": host in in_run, "refused": refused}
    return out


def federation_split(cards, members, current):
    """From ``federation_cards``: this host's card (``local``) and ``_split``'s lists. Fails, naming the cluster, when
    this host is in the cards without a card (its gather phase did not run)."""
    _check_members(members, "federation_split")
    entry = cards.get(current) or {}
    if entry and not entry.get("card"):
        raise AnsibleFilterError("%s: no card gathered for this cluster in this run; run the gather phase "
                                 "(meshfed_phase=gather) on every member before the apply phase." % entry["cluster"])
    return dict(_split(cards, members, current), local=entry.get("card"))


def _split(cards, members, current):
    """The other members' cards (``peers``), the members in this run without one (``unreachable``, with ``refused``
    reasons), those leaving (``leaving``) and every member's cluster name (``members``)."""
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
    """``federation_split`` of ``current`` straight from ``hostvars`` (without ``local``), at the cost of reading
    every member's variables on each host."""
    _check_members(members, "federation_peers")
    return _split(federation_cards(hostvars, members, card_var, in_run, fetch_var), members, current)


class FilterModule(object):
    def filters(self):
        return {"federation_peers": federation_peers, "federation_cards": federation_cards,
                "federation_split": federation_split}
