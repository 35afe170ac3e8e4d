# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)

# Documentation: federation_report.yml beside it, as for the collection's other filters.

from ansible_collections.meshfed.istio.plugins.module_utils.common import times
from ansible_collections.meshfed.istio.plugins.module_utils.plan.federations import PEER_STATES

IN_RUN = PEER_STATES["gathered"]
UNREACHABLE = PEER_STATES["unreachable"]
NOT_IN_RUN = PEER_STATES["not_in_run"]
LEFT = PEER_STATES["left"]
GONE = (LEFT, PEER_STATES["pruned_absent"])
_REFUSALS = {"rollback": "replayed: older than the copy last accepted"}


def _parse_ts(text):
    try:
        return times.parse(text)
    except ValueError:
        return None


def _age(then, now):
    """Compact age: 42s, 17m, 5h, 3d."""
    if then is None:
        return "unknown"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds


def _node(name):
    return name.replace("-", "_").replace(".", "_")


def _short(sha256):
    return "`%s…`" % sha256[:16]


class _Federation:
    """What the run's hosts know: clusters (own cards) and each one's view of its peers."""

    def __init__(self, hostvars, hosts, now):
        self.clusters, self.views, self.warnings, self.failed, self.refused = {}, {}, [], {}, {}
        for host in sorted(hosts):
            hv = hostvars[host]
            card, result, fetched = hv.get("meshfed_card"), hv.get("meshfed_result") or {}, hv.get("meshfed_peer_metadata") or {}
            name = (card or {}).get("name") or hv.get("meshfed_cluster_name") or host
            for res in (hv.get("meshfed_facts") or {}, result, fetched):
                self.warnings.extend(w for w in res.get("warnings") or [] if w not in self.warnings)
                if res.get("failed"):
                    self.failed[name] = str(res.get("msg") or "failed").splitlines()[0]
            if fetched.get("failed"):
                self.refused[name] = (fetched.get("reason") or "fetch", self.failed[name])
            if isinstance(card, dict) and card.get("name"):
                self.clusters[name] = dict(card, state=LEFT if hv.get("meshfed_state") == "absent" else IN_RUN)
            if isinstance(result.get("federation"), dict):
                self.views[name] = result["federation"]
        # (cluster, peer entry) for every peer in each cluster's view; peer_only: peers with no card here (the first view wins)
        self.peers = [(name, peer) for name, view in sorted(self.views.items()) for peer in view.get("peers") or []]
        self.peer_only = {peer["name"]: peer for _name, peer in reversed(self.peers) if peer["name"] not in self.clusters}
        self.names = sorted(set(self.clusters) | set(self.peer_only) | set(self.failed))
        # (importer, hostname, exporter, peer state) for every import each cluster holds
        self.imports = sorted((name, host, peer["name"], peer["state"]) for name, peer in self.peers
                              if peer["state"] not in GONE for host in peer.get("services") or [])
        # (seen from, peer, state, cached at, age) for every kept peer that was not gathered
        self.stale = [(name, peer["name"], peer["state"], peer.get("cached_at") or "never", _age(_parse_ts(peer.get("cached_at")), now))
                      for name, peer in self.peers if peer["state"] in (UNREACHABLE, NOT_IN_RUN)]
        self.roots = []  # (cluster, root CA, days left or None) for every cluster's roots: from its card, else as a peer cached them
        for name in self.names:
            card = self.clusters.get(name)
            for root in (card.get("root_cas") if card else (self.peer_only.get(name) or {}).get("roots")) or []:
                not_after = _parse_ts(root.get("not_after"))
                self.roots.append((name, root, (not_after - now).days if not_after else None))

    def state(self, name):
        return (self.clusters.get(name) or self.peer_only.get(name) or {}).get("state", "")

    def all_warnings(self, warning_days):
        out = ["%s: root CA %s (%s) expires on %s, within %d days" % (
            name, root["sha256"][:16], root.get("subject") or "?", root["not_after"][:10], warning_days)
            for name, root, days in self.roots if days is not None and days < warning_days]
        out += ["%s: %s" % (n, m) if not m.startswith(n + ":") else m for n, m in sorted(self.failed.items())]
        out += ["%s: %s as seen from %s, metadata cached %s ago; its imports and roots are kept" % (p, s, f, age)
                for f, p, s, _at, age in self.stale if s == UNREACHABLE]
        return out + [w for w in self.warnings if w not in out]


def _section(title, header, rows, intro=None):
    """A Markdown section: its title, the intro paragraph if any, and a table."""
    lines = ["## " + title, ""] + ([intro, ""] if intro else [])
    lines += ["| %s |" % " | ".join(header), "|%s" % ("---|" * len(header))]
    return lines + ["| %s |" % " | ".join(str(c) for c in row) for row in rows]


def _cluster_row(fed, name):
    card = fed.clusters.get(name)
    if not card:
        peer = fed.peer_only.get(name) or {}
        state = "failed: %s" % fed.failed[name] if name in fed.failed else peer.get("state", NOT_IN_RUN)
        return name, peer.get("trust_domain", "?"), "(cached)", ", ".join(peer.get("services") or []) or "—", state
    gw = card.get("gateway") or {}
    gateway = ", ".join("%s:%s" % (a, gw.get("port")) for a in gw.get("addresses") or [])
    exports = ", ".join(s["hostname"] for s in card.get("public_services") or []) or "—"
    return name, card.get("trust_domain", ""), gateway, exports, card["state"]


def _trust_row(fed, name, names):
    trusted = dict((p["name"], " ".join(_short(r["sha256"]) for r in p.get("roots") or []) or "(none)")
                   for p in fed.views[name].get("peers") or [] if p["state"] not in GONE)
    return [name] + ["—" if peer == name else trusted.get(peer, "not trusted") for peer in names]


def federation_report(hostvars, hosts, warning_days=30, now=None):
    now = _parse_ts(now) if now else times.utcnow().replace(microsecond=0)
    fed = _Federation(hostvars, hosts, now)
    names, warnings = fed.names, fed.all_warnings(int(warning_days))
    graph = ["## Graph", "", "Arrows go from the exporting cluster to the importing one, labelled with the service.", "",
             "```mermaid", "graph LR"] + ['  %s["%s<br/>%s"]' % (_node(name), name, fed.state(name)) for name in names]
    graph += ['  %s %s|"%s"| %s' % (_node(exporter), "-->" if state == IN_RUN else "-.->", host, _node(importer))
              for importer, host, exporter, state in fed.imports]
    sections = [_section("Clusters", ("cluster", "trust domain", "gateway", "exports", "state"),
                         [_cluster_row(fed, name) for name in names]),
                graph + ["```"],
                _section("Imports", ("importer", "service", "from", "peer state"), fed.imports),
                _section("Roots", ("cluster", "root SHA-256", "subject", "expires", "days left"),
                         [(name, _short(root["sha256"]), root.get("subject", ""), root.get("not_after", "?"),
                           "?" if days is None else days) for name, root, days in fed.roots]),
                _section("Trust matrix", ["cluster"] + names, [_trust_row(fed, name, names) for name in sorted(fed.views)],
                         "Row: the cluster; column: the peer whose root(s) it trusts (scoped to the peer's trust domain)."),
                _section("Unreachable and stale peers", ("seen from", "peer", "state", "cached metadata from", "age"),
                         fed.stale, "Peers kept from the metadata cached in the IstioFederation object (last written at, age)."),
                ["## Warnings", ""] + (["- %s" % w for w in warnings] or ["None."])]
    if fed.refused:
        rows = [(name, "%s (%s)" % (reason, _REFUSALS[reason]) if reason in _REFUSALS else reason, msg)
                for name, (reason, msg) in sorted(fed.refused.items())]
        sections.insert(-1, _section("Refused peer metadata", ("peer", "reason", "message"), rows,
                                     "Metadata peers whose published metadata was refused this run: each is kept as unreachable, "
                                     "with everything the clusters hold of it (objects and roots), until a valid copy is served."))
    head = ["# Istio federation report", "", "Generated %s by meshfed.istio; %d clusters in this run." % (
        times.iso(now), len(fed.clusters))]
    markdown = "\n".join(head + [""] + [line for s in sections for line in s + [""]])
    return {"markdown": markdown, "summary": _summary(fed, warnings), "warnings": warnings}


def _summary(fed, warnings):
    lines = ["Federation: %d clusters in this run (%s), %d imports, %d warnings" % (
        len(fed.clusters), ", ".join(sorted(fed.clusters)) or "none", len(fed.imports), len(warnings))]
    for name, view in sorted(fed.views.items()):
        peers = ", ".join("%s (%s)" % (p["name"], p["state"]) for p in view.get("peers") or [])
        lines.append("  %s: %s" % (name, peers or "no peers"))
    not_in_run = sorted(set(peer["name"] for _name, peer in fed.peers if peer["state"] == NOT_IN_RUN))
    if not_in_run:
        lines.append("Not in this run (kept, not removed): %s" % ", ".join(not_in_run))
    if fed.refused:
        lines.append("Metadata refused (peer kept as unreachable, nothing removed): %s" % ", ".join(
            "%s (%s)" % (name, _REFUSALS.get(reason, reason)) for name, (reason, _msg) in sorted(fed.refused.items())))
    lines += ["Warning: %s" % w for w in warnings[:8]]
    if len(warnings) > 8:
        lines.append("... %d more warnings in the report" % (len(warnings) - 8))
    return lines


class FilterModule(object):
    def filters(self):
        return {"federation_report": federation_report}
