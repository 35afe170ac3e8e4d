"""A caCertificates block written by hand keeps every byte of the user's entries.

The user's own entries (a comment naming the owner, their own indentation, a flow-style
``trustDomains: [a, b]``, a flow-style item) stay byte for byte through a federation run and
through the removal of the collection's entries (the peer leaves); where the block cannot be
edited that way (a flow-style ``caCertificates: [...]`` holding the user's entries), the run fails
naming the ConfigMap and what it cannot preserve, and writes nothing. Against real API servers.
"""

import pytest
import yaml

from tests.lab import kubeapi
from tests.integration.ansible_run import run_playbook
from tests.lab import pki
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

BAR = "bar.xyz.svc.cluster-b.local"


def _user_root(cn):
    return pki.cert_pem(pki.self_signed_ca(pki.name(cn, "corp"), pki.rsa_key())).decode()


def _indented(pem, indent):
    return "".join("%s%s\n" % (" " * indent, line) for line in pem.strip().splitlines())


@pytest.fixture(scope="module")
def pair(lab_clusters, tmp_path_factory):
    a, b = lab_clusters(["cluster-a", "cluster-b"])
    corp, partner = _user_root("corporate root"), _user_root("partner root")
    block = ("caCertificates:   # roots we trust besides our own\n"
             "    # corporate root, owner: security team\n"
             "    - pem: |\n" + _indented(corp, 8)
             + "      trustDomains: [corp.example, legacy.corp.example]   # both domains\n"
             "\n"
             "    # partner, see ticket SEC-42\n"
             "    - {pem: \"%s\", trustDomains: [partner.example]}\n" % corp_escaped(partner))
    hand = block + "# below: rendered by the installer\n" + kubeapi.mesh_text(a)
    kubeapi.set_mesh_text(a, hand)
    return {"a": a, "b": b, "hand": hand, "block": block, "corp": corp, "partner": partner,
            "dir": tmp_path_factory.mktemp("hand-edited")}


def corp_escaped(pem):
    return pem.strip().replace("\n", "\\n") + "\\n"


def _inventory(pair, name, b_vars=None):
    return write_inventory([pair["a"], pair["b"]], pair["dir"] / name,
                           extra_hostvars={"cluster-b": b_vars} if b_vars else None)


def test_hand_edited_entries_keep_every_byte_through_a_run_and_its_removal(pair):
    a, b, hand, block = pair["a"], pair["b"], pair["hand"], pair["block"]
    run = run_playbook(_inventory(pair, "join.yml"))
    assert run.rc == 0 and run.failed("cluster-a") == 0, run
    text = kubeapi.mesh_text(a)
    rest = hand[len(block):]
    assert text.startswith(block) and text.endswith(rest), text  # the user's block and the rest, byte for byte
    ours = text[len(block):len(text) - len(rest)]
    assert ours.startswith("    - pem: |\n        -----BEGIN CERTIFICATE-----\n"), ours  # in the block's indentation
    assert yaml.safe_load("caCertificates:\n" + ours)["caCertificates"] == [
        {"pem": kubeapi.root_pem(b).strip() + "\n", "trustDomains": ["cluster-b.local"]}]
    assert kubeapi.trusted(a) == {pair["corp"].strip(): ["corp.example", "legacy.corp.example"],
                                  pair["partner"].strip(): ["partner.example"],
                                  kubeapi.root_pem(b).strip(): ["cluster-b.local"]}
    again = run_playbook(_inventory(pair, "again.yml"))
    assert again.rc == 0 and again.changed("cluster-a") == 0, again
    assert kubeapi.mesh_text(a) == text

    leave = run_playbook(_inventory(pair, "leave.yml", {"meshfed_state": "absent"}))
    assert leave.rc == 0 and leave.failed("cluster-a") == 0, leave
    assert kubeapi.mesh_text(a) == hand  # the collection's entry gone, every byte of the user's text back
    assert BAR not in kubeapi.se_by_host(a)


def test_a_block_that_cannot_be_spliced_fails_naming_the_configmap_and_writes_nothing(pair):
    a = pair["a"]
    flow = pair["hand"][len(pair["block"]):] + (  # the installer's text, then a flow list of the user's
        "caCertificates: [{pem: \"%s\", trustDomains: [corp.example]}]   # corporate root, owner: security team\n"
        % corp_escaped(pair["corp"]))
    kubeapi.set_mesh_text(a, flow)
    before = {"se": kubeapi.se_by_host(a), "feds": sorted(kubeapi.federations(a)), "gateways": sorted(kubeapi.gateways(a))}
    run = run_playbook(_inventory(pair, "rejoin.yml"))
    assert run.rc != 0 and run.failed("cluster-a") == 1, run
    (result,) = [r for r in run.results("federation", host="cluster-a") if r["status"] == "failed"]
    msg = result["msg"]
    assert msg.startswith("cluster-a: ConfigMap istio-system/istio key mesh: cannot add or remove the peers' roots "
                          "in caCertificates"), msg
    assert "written in flow style" in msg and "Nothing was changed" in msg, msg
    assert kubeapi.mesh_text(a) == flow  # byte for byte: no rewrite
    after = {"se": kubeapi.se_by_host(a), "feds": sorted(kubeapi.federations(a)), "gateways": sorted(kubeapi.gateways(a))}
    assert after == before and BAR not in after["se"] and "cluster-b" not in after["feds"]
