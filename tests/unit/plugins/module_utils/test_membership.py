"""Explicit membership: which known peers are kept, which are removed, and why."""

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.runners import membership


def params(peers=(), unreachable=(), leaving=(), members=None, prune=False, state="present"):
    return {"peers": [{"name": p} for p in peers], "unreachable_peers": list(unreachable),
            "leaving_peers": list(leaving), "members": list(members or []), "prune_absent": prune, "state": state}


def test_known_peer_absent_from_the_run_is_kept_as_not_in_run():
    out = membership(params(peers=["b"]), known=["b", "c"])
    assert out == {"gathered": ["b"], "unreachable": [], "not_in_run": ["c"], "left": [], "pruned_absent": []}


def test_unreachable_member_is_kept_as_unreachable():
    out = membership(params(peers=["b"], unreachable=["c"]), known=["b", "c"])
    assert out["unreachable"] == ["c"] and out["not_in_run"] == [] and out["left"] == []


def test_leaving_peer_is_removed_even_when_unreachable():
    out = membership(params(peers=["b"], unreachable=["c"], leaving=["c"]), known=["b", "c"])
    assert out["left"] == ["c"] and out["unreachable"] == [] and out["not_in_run"] == []


@pytest.mark.parametrize("members, pruned, kept", [
    (["a", "b"], ["c"], []),          # c is not in the inventory at all: pruned with the switch
    (["a", "b", "c"], [], ["c"]),     # c is a member limited out of the run: kept even with the switch
])
def test_prune_switch_only_removes_peers_missing_from_the_inventory(members, pruned, kept):
    out = membership(params(peers=["b"], members=members, prune=True), known=["b", "c"])
    assert out["pruned_absent"] == pruned and out["not_in_run"] == kept


def test_without_the_switch_nothing_missing_is_pruned():
    out = membership(params(peers=["b"], members=["a", "b"]), known=["b", "c"])
    assert out["pruned_absent"] == [] and out["not_in_run"] == ["c"]


def test_state_absent_leaves_every_known_and_gathered_peer():
    out = membership(params(peers=["b"], unreachable=["d"], state="absent"), known=["b", "c"])
    assert out["left"] == ["b", "c"] and out["unreachable"] == [] and out["not_in_run"] == []
