import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.filter.federation_peers import (federation_cards, federation_peers,
                                                                               federation_split)


def test_splits_gathered_and_unreachable_members_and_skips_current():
    hostvars = {
        "a": {"meshfed_card": {"name": "cluster-a"}},
        "b": {"meshfed_card": {"name": "cluster-b"}},
        "c": {"meshfed_cluster_name": "cluster-c"},   # gather failed: no card
        "d": {},
    }
    out = federation_peers(hostvars, ["d", "c", "b", "a"], "a")
    assert out == {"peers": [{"name": "cluster-b"}], "unreachable": ["cluster-c", "d"], "leaving": [],
                   "members": ["cluster-a", "cluster-b", "cluster-c", "d"], "refused": {}}


def test_member_limited_out_of_the_run_is_not_unreachable():
    """--limit: a member outside the run's hosts has no card but is not unreachable (merely not in this run)."""
    hostvars = {"a": {"meshfed_card": {"name": "cluster-a"}}, "b": {}, "c": {}}
    out = federation_peers(hostvars, ["a", "b", "c"], "a", in_run=["a", "b"])
    assert out["unreachable"] == ["b"] and out["peers"] == [] and out["members"] == ["b", "c", "cluster-a"]


def test_member_marked_absent_is_leaving_even_with_a_card():
    hostvars = {"a": {"meshfed_card": {"name": "cluster-a"}},
                "b": {"meshfed_card": {"name": "cluster-b"}, "meshfed_state": "absent"},
                "c": {"meshfed_cluster_name": "cluster-c", "meshfed_state": "absent"}}
    out = federation_peers(hostvars, ["a", "b", "c"], "a", in_run=["a", "b"])
    assert out["leaving"] == ["cluster-b", "cluster-c"] and out["peers"] == [] and out["unreachable"] == []


def test_unknown_member_is_an_error():
    with pytest.raises(AnsibleFilterError, match="zz is not an inventory host"):
        federation_peers({}, ["zz"], "a")


def test_refused_metadata_peers_carry_their_reason():
    hostvars = {
        "a": {"meshfed_card": {"name": "cluster-a"}},
        "b": {"meshfed_peer_metadata": {"failed": True, "reason": "signature",
                                        "msg": "cluster-b: private/federation.json does not match its signature"}},
        "c": {"meshfed_peer_metadata": {"skipped": True}},
    }
    out = federation_peers(hostvars, ["a", "b", "c"], "a")
    assert out["unreachable"] == ["b", "c"]
    assert out["refused"] == {"b": {"reason": "signature",
                                    "message": "cluster-b: private/federation.json does not match its signature"}}


# -- hostvars read once per play (federation_cards), split per host (federation_split) -------------------
class CountingHostvars(dict):
    """hostvars that count how often each host's variables are read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.reads = {}

    def __getitem__(self, host):
        self.reads[host] = self.reads.get(host, 0) + 1
        return dict.__getitem__(self, host)


def _fleet():
    return CountingHostvars({
        "a": {"meshfed_card": {"name": "cluster-a"}},
        "b": {"meshfed_card": {"name": "cluster-b"}},
        "c": {"meshfed_cluster_name": "cluster-c", "meshfed_peer_metadata": {"failed": True, "reason": "pin", "msg": "m"}},
        "d": {"meshfed_card": {"name": "cluster-d"}, "meshfed_state": "absent"},
        "e": {},
    })


def test_cards_read_each_host_once_and_split_agrees_with_federation_peers_for_every_host():
    members, in_run = ["a", "b", "c", "d", "e"], ["a", "b", "c", "d"]
    hostvars = _fleet()
    cards = federation_cards(hostvars, members, in_run=in_run)
    assert hostvars.reads == {h: 1 for h in members}
    for host in ("a", "b", "d"):
        split = federation_split(cards, members, host)
        assert split.pop("local") == hostvars[host]["meshfed_card"]
        assert split == federation_peers(_fleet(), members, host, in_run=in_run), host
    split = federation_split(cards, members, "a")
    assert split["unreachable"] == ["cluster-c"] and split["leaving"] == ["cluster-d"]
    assert split["refused"] == {"cluster-c": {"reason": "pin", "message": "m"}}
    assert [p["name"] for p in split["peers"]] == ["cluster-b"]


def test_split_fails_naming_the_cluster_when_this_host_has_no_card():
    cards = federation_cards(_fleet(), ["a", "c"], in_run=["a", "c"])
    with pytest.raises(AnsibleFilterError, match=r"^cluster-c: no card gathered for this cluster in this run"):
        federation_split(cards, ["a", "c"], "c")
    with pytest.raises(AnsibleFilterError, match="b is not in the cards"):
        federation_split(cards, ["a", "b"], "a")
