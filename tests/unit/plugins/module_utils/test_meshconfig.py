import pytest
import yaml

from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import pem_sha256
from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import (
    MeshConfigError,
    check_multiroot,
    load_mesh,
    trust_domain,
    update_ca_certificates,
)

from ...conftest import make_cert

MESH = """\
# managed by helm (chart istiod); edit values.yaml, not this ConfigMap
accessLogFile: /dev/stdout
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  proxyMetadata:
    PROXY_CONFIG_XDS_AGENT: "true"
  # tracing is off in this mesh
  tracing: {}
enableAutoMtls: true
trustDomain: cluster-a.local   # the mesh's own identity domain
"""


@pytest.fixture(scope="module")
def pems():
    return {name: make_cert("Root %s" % name)[2] for name in ("b", "b2", "c", "user")}


def entry(pems, peer, key=None):
    return {"pem": pems[key or peer], "trustDomains": ["cluster-%s.local" % peer[0]], "peer": "cluster-%s" % peer[0]}


def update(text, desired, managed=None, preserve=()):
    return update_ca_certificates(text, "cluster-a", desired, managed or {}, preserve_peers=preserve)


def test_adds_entries_and_keeps_every_other_byte(pems):
    new, managed, changed, warnings = update(MESH, [entry(pems, "b"), entry(pems, "c")])
    assert changed and warnings == []
    assert new.startswith(MESH)  # comments, order and formatting untouched
    doc = yaml.safe_load(new)
    assert doc["caCertificates"] == [
        {"pem": pems["b"].strip() + "\n", "trustDomains": ["cluster-b.local"]},
        {"pem": pems["c"].strip() + "\n", "trustDomains": ["cluster-c.local"]},
    ]
    assert managed == {pem_sha256(pems["b"]): "cluster-b", pem_sha256(pems["c"]): "cluster-c"}


def test_second_call_is_a_no_op(pems):
    new, managed, _c, _w = update(MESH, [entry(pems, "b")])
    again, managed2, changed, _w = update(new, [entry(pems, "b")], managed)
    assert not changed and again is new and managed2 == managed


def test_block_in_the_middle_is_replaced_in_place(pems):
    middle = MESH.replace("enableAutoMtls: true\n", "caCertificates:\n- pem: |\n%s  trustDomains: [x.local]\nenableAutoMtls: true\n"
                          % "".join("    %s\n" % line for line in pems["user"].strip().splitlines()))
    new, managed, changed, _w = update(middle, [entry(pems, "b")])
    assert changed
    before = middle.split("caCertificates:", maxsplit=1)[0]
    after = middle.split("trustDomains: [x.local]\n", maxsplit=1)[1]
    assert new.startswith(before) and new.endswith(after)
    cas = yaml.safe_load(new)["caCertificates"]
    assert [c["trustDomains"] for c in cas] == [["x.local"], ["cluster-b.local"]]  # user's first, untouched


def test_user_entries_are_never_touched_nor_adopted(pems):
    user = {"pem": pems["user"], "trustDomains": ["partner.example"]}
    text = MESH + yaml.safe_dump({"caCertificates": [user]})
    new, managed, changed, _w = update(text, [entry(pems, "b")])
    new2, managed2, changed2, _w = update(new, [], managed)  # peer b leaves
    assert changed2
    assert yaml.safe_load(new2)["caCertificates"] == [user]
    assert managed2 == {}


def test_same_pem_already_added_by_user_is_reported_not_duplicated(pems):
    text = MESH + yaml.safe_dump({"caCertificates": [{"pem": pems["b"], "trustDomains": ["mine.local"]}]})
    new, managed, changed, warnings = update(text, [entry(pems, "b")])
    assert not changed and new is text and managed == {}
    assert "added by someone else" in warnings[0] and "cluster-b" in warnings[0]


def test_unreachable_peer_entries_are_preserved(pems):
    new, managed, _c, _w = update(MESH, [entry(pems, "b"), entry(pems, "c")])
    kept, managed2, changed, _w = update(new, [entry(pems, "c")], managed, preserve=["cluster-b"])
    assert not changed and kept is new and managed2 == managed


def test_rotation_keeps_both_then_drops_the_old(pems):
    new, managed, _c, _w = update(MESH, [entry(pems, "b")])
    both, managed, changed, _w = update(new, [entry(pems, "b"), entry(pems, "b", "b2")], managed)
    assert changed and len(yaml.safe_load(both)["caCertificates"]) == 2
    only_new, managed, changed, _w = update(both, [entry(pems, "b", "b2")], managed)
    assert changed
    assert [c["pem"] for c in yaml.safe_load(only_new)["caCertificates"]] == [pems["b2"].strip() + "\n"]
    assert list(managed) == [pem_sha256(pems["b2"])]


def test_block_removed_when_nothing_is_left(pems):
    new, managed, _c, _w = update(MESH, [entry(pems, "b")])
    back, managed, changed, _w = update(new, [], managed)
    assert changed and back == MESH and managed == {}


def _pem_lines(pem, indent):
    return "".join("%s%s\n" % (" " * indent, line) for line in pem.strip().splitlines())


def hand_edited(pems):
    """A caCertificates block written by hand: comments, 4-space items, flow-style trustDomains, a flow item."""
    return (MESH.replace("enableAutoMtls: true\n", "")
            + "caCertificates:   # roots trusted besides our own\n"
            + "    # corporate root, owner: security team\n"
            + "    - pem: |\n" + _pem_lines(pems["user"], 8)
            + "      trustDomains: [corp.example, legacy.corp.example]   # both domains\n"
            + "\n"
            + "    # partner, see ticket SEC-42\n"
            + "    - {pem: \"%s\", trustDomains: [partner.example]}\n" % pems["c"].strip().replace("\n", "\\n")
            + "# next: the rest of the mesh config\n"
            + "enableAutoMtls: true\n")


def test_hand_edited_block_keeps_every_byte_through_a_run_and_its_removal(pems):
    text = hand_edited(pems)
    new, managed, changed, warnings = update(text, [entry(pems, "b")])
    assert changed and warnings == []
    head, tail = text.split("# next: the rest", 1)
    assert new.startswith(head) and new.endswith("# next: the rest" + tail)  # the user's block, byte for byte
    added = new[len(head):-len("# next: the rest" + tail)]
    assert added.startswith("    - pem: |\n        -----BEGIN CERTIFICATE-----\n")  # in the block's indentation
    cas = yaml.safe_load(new)["caCertificates"]
    assert [c["trustDomains"] for c in cas] == [["corp.example", "legacy.corp.example"], ["partner.example"],
                                                ["cluster-b.local"]]
    again, managed2, changed2, _w = update(new, [entry(pems, "b")], managed)
    assert not changed2 and again is new and managed2 == managed
    back, managed3, changed3, _w = update(new, [], managed)  # peer b leaves
    assert changed3 and back == text and managed3 == {}


def test_hand_edited_block_with_our_entry_in_the_middle(pems):
    text = hand_edited(pems)
    new, managed, _c, _w = update(text, [entry(pems, "b")])
    # the user adds an entry after ours; our removal leaves theirs as written
    user_tail = "    - pem: |\n" + _pem_lines(pems["b2"], 8) + "      trustDomains:\n      - late.example\n"
    edited = new.replace("# next: the rest", user_tail + "# next: the rest")
    back, managed2, changed, _w = update(edited, [], managed)
    assert changed and managed2 == {}
    assert back == text.replace("# next: the rest", user_tail + "# next: the rest")


@pytest.mark.parametrize("text, reason", [
    ("{trustDomain: cluster-a.local, accessLogFile: /dev/stdout, caCertificates: []}\n", "one flow-style mapping"),
    ("trustDomain: cluster-a.local\ncaCertificates: [{pem: \"x\", trustDomains: [corp.example]}]  # ours\n",
     "written in flow style"),
])
def test_a_layout_that_cannot_be_spliced_fails_naming_the_configmap_and_changes_nothing(pems, text, reason):
    with pytest.raises(MeshConfigError) as err:
        update_ca_certificates(text, "cluster-a", [entry(pems, "b")], {}, configmap="istio-system/istio-1-24")
    msg = str(err.value)
    assert msg.startswith("cluster-a: ConfigMap istio-system/istio-1-24 key mesh: cannot add or remove")
    assert reason in msg and "Nothing was changed" in msg


def test_empty_flow_list_becomes_a_block_keeping_its_comment(pems):
    text = MESH + "caCertificates: []   # filled by meshfed\n"
    new, _m, changed, _w = update(text, [entry(pems, "b")])
    assert changed and new.startswith(MESH + "caCertificates:   # filled by meshfed\n- pem: |\n")
    assert len(yaml.safe_load(new)["caCertificates"]) == 1


@pytest.mark.parametrize("text, expected", [
    ("trustDomain: [unclosed\n", "is not valid YAML at line"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_invalid_mesh_is_an_error_not_a_reset(pems, text, expected):
    with pytest.raises(MeshConfigError) as err:
        update(text, [entry(pems, "b")])
    assert str(err.value).startswith("cluster-a: ConfigMap istio key mesh")
    assert expected in str(err.value)


def test_ca_certificates_not_a_list_is_an_error(pems):
    with pytest.raises(MeshConfigError, match="caCertificates is a str, not a list"):
        update("caCertificates: nope\n", [entry(pems, "b")])


def test_trust_domain_default_and_load():
    assert trust_domain(load_mesh(MESH, "c")) == "cluster-a.local"
    assert trust_domain(load_mesh("", "c")) == "cluster.local"


def test_check_multiroot_warnings():
    mesh = load_mesh(MESH, "c")
    assert check_multiroot(mesh, {"ISTIO_MULTIROOT_MESH": "true"}) == []
    assert "ISTIO_MULTIROOT_MESH" in check_multiroot(mesh, {})[0]
    assert "not found" in check_multiroot(mesh, None)[0]
    assert "PROXY_CONFIG_XDS_AGENT" in check_multiroot({}, {"ISTIO_MULTIROOT_MESH": "true"})[0]
