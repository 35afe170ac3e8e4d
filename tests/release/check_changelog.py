"""Check that the changelog tells the release of galaxy.yml's version completely and consistently.

    python tests/release/check_changelog.py

- changelogs/changelog.yaml has a release for galaxy.yml's version, and no fragment is left unreleased
  (``make changelog`` folds them in);
- every module and filter of the collection is listed exactly once as new, in the release its
  ``version_added`` names, and nothing is listed that does not exist;
- the first release records no breaking change, bug fix, security fix, deprecation or removal (there
  was nothing before it to break, fix or remove), and meta/runtime.yml routes (redirects, tombstones)
  only names that a previous release shipped.

Exit status 1 with one line per problem otherwise.
"""

import ast
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
NOT_IN_A_FIRST_RELEASE = ("breaking_changes", "bugfixes", "security_fixes", "deprecated_features", "removed_features")


def _docs(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    return None


def plugins():
    """{('module'|'filter', name): version_added} of every plugin in the checkout."""
    out = {}
    for p in sorted((REPO / "plugins" / "modules").glob("*.py")):
        out[("module", p.stem)] = str((_docs(p) or {}).get("version_added"))
    for p in sorted((REPO / "plugins" / "filter").glob("*.yml")):
        doc = yaml.safe_load(p.read_text())["DOCUMENTATION"]
        out[("filter", doc["name"])] = str(doc.get("version_added"))
    for p in sorted((REPO / "plugins" / "filter").glob("*.py")):
        doc = _docs(p)
        if doc:
            out[("filter", doc["name"])] = str(doc.get("version_added"))
    return out


def problems():
    version = str(yaml.safe_load((REPO / "galaxy.yml").read_text())["version"])
    changelog = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
    releases = changelog.get("releases") or {}
    out = []
    if version not in releases:
        return ["changelogs/changelog.yaml has no release %s (galaxy.yml's version): run make changelog" % version]
    pending = sorted(p.name for p in (REPO / "changelogs" / "fragments").glob("*.y*ml"))
    if pending:
        out.append("fragments not in any release (run make changelog): %s" % ", ".join(pending))
    listed = {}
    for rel, data in releases.items():
        for m in data.get("modules") or []:
            listed.setdefault(("module", m["name"]), []).append(str(rel))
        for kind, entries in (data.get("plugins") or {}).items():
            for e in entries:
                listed.setdefault((kind, e["name"]), []).append(str(rel))
    have = plugins()
    for key, version_added in sorted(have.items()):
        rels = listed.get(key, [])
        if len(rels) != 1:
            out.append("%s %s is listed as new in %d releases (%s), not once" % (key + (len(rels), ", ".join(rels))))
        elif rels[0] != version_added:
            out.append("%s %s: version_added %s, but listed as new in %s" % (key + (version_added, rels[0])))
    for key, rels in sorted(listed.items()):
        if key not in have:
            out.append("%s %s is listed in %s but does not exist" % (key + (", ".join(rels),)))
    first = sorted(releases, key=lambda v: tuple(int(x) for x in str(v).split(".")[:3]))[0]
    for section in NOT_IN_A_FIRST_RELEASE:
        if (releases[first].get("changes") or {}).get(section):
            out.append("release %s is the first: it has no %s (nothing was released before it)" % (first, section))
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text()) or {}
    for kind, routes in (runtime.get("plugin_routing") or {}).items():
        for name in routes or {}:
            key = (kind.rstrip("s") if kind != "modules" else "module", name)
            earlier = [r for r in listed.get(key, []) if str(r) != version]
            if not earlier:
                out.append("meta/runtime.yml routes %s %s, which no earlier release shipped" % (kind, name))
    return out


def main():
    found = problems()
    for p in found:
        print("check_changelog: %s" % p)
    print("check_changelog: %s" % ("FAILED" if found else "ok (%d plugins, each new once)" % len(plugins())))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
