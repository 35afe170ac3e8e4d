"""main() of federation_metadata (publish) and peer_metadata (fetch): results, failure payloads, no key material."""

import os

from ansible_collections.meshfed.istio.plugins.module_utils.metadata.publish import default_cluster_uuid
from ansible_collections.meshfed.istio.plugins.module_utils.pki.jose import (
    generate_private_key_pem, key_fingerprint, load_private_key)
from ansible_collections.meshfed.istio.plugins.modules import federation_metadata, peer_metadata

from ...cards import card
from .test_modules import connected, run  # noqa: F401 pylint: disable=unused-import


def test_publish_generates_a_0600_key_then_a_rerun_changes_nothing(connected, tmp_path):  # noqa: F811
    key_file = tmp_path / "keys" / "cluster-a.key"
    args = {"card": card("cluster-a"), "dest": str(tmp_path / "pub"), "key_file": str(key_file), "generate_key": True}
    first = run(federation_metadata.main, args)
    assert not first.failed and first.result["changed"]
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    key = load_private_key(key_file.read_bytes())
    assert first.result["signer"] == key_fingerprint(key.public_key())
    assert first.result["cluster_uuid"] == default_cluster_uuid("cluster-a")
    body = "".join(key_file.read_text().strip().splitlines()[1:-1])
    assert body not in str(first.result)
    second = run(federation_metadata.main, args)
    assert not second.failed and not second.result["changed"]


def test_publish_check_mode_writes_nothing_and_diff_shows_the_documents(connected, tmp_path):  # noqa: F811
    args = {"card": card("cluster-a"), "dest": str(tmp_path / "pub"), "key": generate_private_key_pem()}
    out = run(federation_metadata.main, args, check_mode=True, diff=True)
    assert out.result["changed"] and not (tmp_path / "pub").exists()
    assert '"clusterUUID"' in out.result["diff"]["after"] and out.result["diff"]["before"] == ""
    assert args["key"].splitlines()[1] not in str(out.result)


def test_publish_refuses_a_key_file_readable_by_others_and_a_missing_one(connected, tmp_path):  # noqa: F811
    key_file = tmp_path / "k.key"
    key_file.write_text(generate_private_key_pem())
    os.chmod(key_file, 0o644)
    args = {"card": card("cluster-a"), "dest": str(tmp_path / "pub"), "key_file": str(key_file)}
    out = run(federation_metadata.main, args)
    assert out.failed and out.result["msg"].startswith("cluster-a: %s is readable by group or others" % key_file)
    assert out.result["field"] == "key_file" and out.result["reason"] == "config"
    out = run(federation_metadata.main, dict(args, key_file=str(tmp_path / "none.key")))
    assert out.failed and "does not exist" in out.result["msg"]


def test_publish_refuses_an_empty_key_naming_the_field(connected, tmp_path):  # noqa: F811
    out = run(federation_metadata.main, {"card": card("cluster-a"), "dest": str(tmp_path / "pub"), "key": ""})
    assert out.failed and out.result["msg"] == "cluster-a: key is empty and key_file is not set; give the signing key"
    assert out.result["field"] == "key" and not (tmp_path / "pub").exists()


def test_publish_refuses_a_bad_card(connected, tmp_path):  # noqa: F811
    bad = card("cluster-a")
    bad["gateway"]["addresses"] = []
    out = run(federation_metadata.main, {"card": bad, "dest": str(tmp_path), "key": generate_private_key_pem()})
    assert out.failed and "gateway.addresses" in out.result["msg"] and out.result["msg"].startswith("cluster-a: ")


def test_fetch_returns_the_card_and_a_refusal_carries_peer_and_reason(connected, tmp_path):  # noqa: F811
    key = generate_private_key_pem()
    run(federation_metadata.main, {"card": card("cluster-b"), "dest": str(tmp_path), "key": key})
    signer = key_fingerprint(load_private_key(key).public_key())
    out = run(peer_metadata.main, {"cluster": "cluster-b", "path": str(tmp_path), "signer_key": signer})
    assert not out.failed and out.result["card"]["name"] == "cluster-b" and out.result["changed"] is False
    assert out.result["card"]["metadata"]["coordinates"]["signerKeySHA256"] == signer
    out = run(peer_metadata.main, {"cluster": "cluster-b", "path": str(tmp_path), "signer_key": "sha256:" + "0" * 64})
    assert out.failed and out.result["reason"] == "unknown_signer" and out.result["cluster"] == "cluster-b"
    assert out.result["msg"].startswith("cluster-b: metadata is signed by an unknown key ")
    out = run(peer_metadata.main, {"cluster": "cluster-b", "url": "http://127.0.0.1/x", "signer_key": signer})
    assert out.failed and out.result["reason"] == "config" and "must be https://" in out.result["msg"]
