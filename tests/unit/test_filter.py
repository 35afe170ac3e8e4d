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
    assert out == {"peers": [{"name": "cluster-b"}], "unreachable": ["cluster-c", "d"]}


def test_unknown_member_is_an_error():
    with pytest.raises(AnsibleFilterError, match="zz is not an inventory host"):
        federation_peers({}, ["zz"], "a")
