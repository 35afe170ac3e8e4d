"""federation_report filter: the Markdown report and summary built from the hosts' results."""

import re

from ansible_collections.meshfed.istio.plugins.filter.federation_report import federation_report

NOW = "2026-11-26T00:00:00Z"


def card(name, not_after="2036-01-01T00:00:00Z", services=("web",)):
    return {"name": name, "trust_domain": "%s.local" % name, "gateway": {"addresses": ["10.0.0.1"], "port": 15443},
            "root_cas": [{"sha256": (name[-1] * 64), "subject": "CN=%s root" % name, "not_after": not_after}],
            "public_services": [{"hostname": "%s.ns.svc.%s.local" % (s, name)} for s in services]}


def view(name, peers):
    return {"cluster": name, "state": "present", "peers": peers}


def peer(p, state="in this run", cached_at="2026-11-25T23:00:00Z"):
    c = card(p)
    return {"name": p, "state": state, "trust_domain": c["trust_domain"], "cached_at": cached_at,
            "roots": [{"sha256": r["sha256"], "subject": r["subject"], "not_after": r["not_after"]} for r in c["root_cas"]],
            "services": [s["hostname"] for s in c["public_services"]]}


def hostvars_for(**views):
    return dict((n, {"meshfed_card": card(n), "meshfed_result": {"federation": v, "warnings": []},
                     "meshfed_facts": {"warnings": []}}) for n, v in views.items())


def test_two_clusters_graph_imports_matrix_and_summary():
    hv = hostvars_for(a=view("a", [peer("b")]), b=view("b", [peer("a")]))
    out = federation_report(hv, ["a", "b"], now=NOW)
    md = out["markdown"]
    assert '  b -->|"web.ns.svc.b.local"| a' in md and '  a -->|"web.ns.svc.a.local"| b' in md
    assert "| a | web.ns.svc.b.local | b | in this run |" in md
    matrix = md.split("## Trust matrix")[1].split("##")[0]
    assert "| a | — | `bbbbbbbbbbbbbbbb…` |" in matrix and "| b | `aaaaaaaaaaaaaaaa…` | — |" in matrix
    assert out["warnings"] == []
    assert out["summary"][0] == "Federation: 2 clusters in this run (a, b), 2 imports, 0 warnings"


def test_peer_not_in_run_is_kept_and_listed_with_its_cache_age():
    hv = hostvars_for(a=view("a", [peer("b", state="not in this run")]))
    out = federation_report(hv, ["a"], now=NOW)
    assert "| a | b | not in this run | 2026-11-25T23:00:00Z | 1h |" in out["markdown"]
    assert "Not in this run (kept, not removed): b" in out["summary"]
    assert '  b -.->|"web.ns.svc.b.local"| a' in out["markdown"]   # kept import drawn dashed
    assert out["warnings"] == []          # absent from a run is not a problem


def test_unreachable_peer_and_failed_host_are_warnings():
    hv = hostvars_for(a=view("a", [peer("b", state="unreachable", cached_at="2026-11-23T00:00:00Z")]))
    hv["b"] = {"meshfed_facts": {"failed": True, "msg": "b: cannot reach the API server https://x: refused"}}
    out = federation_report(hv, ["a", "b"], now=NOW)
    assert "b: cannot reach the API server https://x: refused" in out["warnings"]
    assert any(w.startswith("b: unreachable as seen from a, metadata cached 3d ago") for w in out["warnings"])
    assert re.search(r"^\| b \| b\.local \| \(cached\) \| .* \| failed: b: cannot reach", out["markdown"], re.M)


def test_ca_expiring_within_the_window_is_a_warning():
    hv = hostvars_for(a=view("a", []))
    hv["a"]["meshfed_card"] = card("a", not_after="2026-12-10T00:00:00Z")
    assert federation_report(hv, ["a"], warning_days=10, now=NOW)["warnings"] == []
    warnings = federation_report(hv, ["a"], warning_days=30, now=NOW)["warnings"]
    assert warnings == ["a: root CA aaaaaaaaaaaaaaaa (CN=a root) expires on 2026-12-10, within 30 days"]


def test_replayed_metadata_is_listed_under_its_own_heading_and_in_the_summary():
    hv = hostvars_for(a=view("a", [peer("b", state="unreachable")]))
    msg = ("b: public/public.json was issued at 2026-11-25T20:00:00Z, before the last metadata accepted "
           "(2026-11-25T22:00:00Z): an older copy is being replayed; refused")
    hv["b"] = {"meshfed_facts": {"skipped": True},
               "meshfed_peer_metadata": {"failed": True, "reason": "rollback", "msg": msg}}
    out = federation_report(hv, ["a", "b"], now=NOW)
    section = out["markdown"].split("## Refused peer metadata\n", 1)[1].split("\n## ", 1)[0]
    assert "| b | rollback (replayed: older than the copy last accepted) | %s |" % msg in section
    assert "Metadata refused (peer kept as unreachable, nothing removed): b (replayed: older than the copy last " \
           "accepted)" in out["summary"]
    assert msg in out["warnings"] and out["summary"][0].endswith("%d warnings" % len(out["warnings"]))


def test_no_refused_section_when_every_copy_was_accepted():
    out = federation_report(hostvars_for(a=view("a", [peer("b")]), b=view("b", [peer("a")])), ["a", "b"], now=NOW)
    assert "Refused peer metadata" not in out["markdown"]
    assert not any(line.startswith("Metadata refused") for line in out["summary"])
