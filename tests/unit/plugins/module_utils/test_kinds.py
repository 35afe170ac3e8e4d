"""The table of kinds drives paths and pruning; meta/rbac/ must grant every verb a kind needs."""

from pathlib import Path

import yaml

from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import KINDS, api_version, kind_path

RBAC = Path(__file__).resolve().parents[4] / "meta" / "rbac"


def _granted():
    """(group, resource) -> verbs over every Role and ClusterRole in meta/rbac/."""
    granted = {}
    for path in RBAC.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for rule in (doc or {}).get("rules") or []:
                for group in rule.get("apiGroups") or []:
                    for resource in rule.get("resources") or []:
                        granted.setdefault((group, resource), set()).update(rule.get("verbs") or [])
    return granted


def _needed():
    for kind in KINDS:
        yield (kind.group, kind.plural), set(kind.verbs)
        if kind.status_verbs:
            yield (kind.group, kind.plural + "/status"), set(kind.status_verbs)


def _missing(granted):
    missing = dict((what, sorted(verbs - granted.get(what, set()))) for what, verbs in _needed())
    return dict((k, v) for k, v in missing.items() if v)


def test_rbac_grants_every_verb_each_kind_needs():
    assert _missing(_granted()) == {}


def test_rbac_check_names_a_missing_verb():
    granted = _granted()
    granted[("networking.istio.io", "gateways")].discard("delete")
    del granted[("meshfed.io", "istiofederations/status")]
    assert _missing(granted) == {("networking.istio.io", "gateways"): ["delete"],
                                 ("meshfed.io", "istiofederations/status"): ["patch"]}


def test_paths_and_versions_come_from_the_table():
    assert kind_path("IstioFederation", "ignored", "v1", "b", "status") == "/apis/meshfed.io/v1alpha1/istiofederations/b/status"
    assert kind_path("Gateway", "istio-system", "v1beta1") == \
        "/apis/networking.istio.io/v1beta1/namespaces/istio-system/gateways"
    assert api_version("ServiceEntry", "v1") == "networking.istio.io/v1"
    assert sorted(k.prune_order for k in KINDS) == list(range(len(KINDS)))


def test_design_doc_names_every_label_annotation_and_kind():
    from ansible_collections.meshfed.istio.plugins.module_utils.plan import kinds
    design = (RBAC.parents[1] / "docs" / "design.md").read_text()
    names = [v for k, v in vars(kinds).items() if k.endswith(("_LABEL", "_ANNOTATION", "_VALUE"))]
    assert len(names) == 7
    assert [n for n in names + [k.name for k in KINDS] if n not in design] == []
