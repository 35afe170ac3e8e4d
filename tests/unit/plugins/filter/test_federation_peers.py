import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.filter.federation_peers import federation_peers


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
