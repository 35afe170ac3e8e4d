# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render one cluster's plan into its directory (see layout.py for what the directory holds)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import PEER_LABEL
from ansible_collections.meshfed.istio.plugins.module_utils.render import files as disk
from ansible_collections.meshfed.istio.plugins.module_utils.render import layout


def object_ref(obj):
    meta = obj["metadata"]
    return "%s %s%s" % (obj["kind"], meta["namespace"] + "/" if meta.get("namespace") else "", meta["name"])


class Rendering(object):
    """The files of one cluster's render: ``planned`` changes, ``summary`` and ``diffs`` for the module result."""

    def __init__(self, directory, cluster, previous):
        self.directory, self.cluster, self.previous = directory, cluster, previous
        self.planned, self.diffs, self.new_objects = None, [], {}
        self.summary = {"created": [], "updated": [], "pruned": [], "unchanged": 0, "kept_unreachable": [],
                        "conflicts": [], "files": {"written": [], "removed": [], "unchanged": 0}}

    def desired_files(self, desired, objects, trust, now):
        """Every file the directory should hold: the manifests (of preserved, unreachable peers: the files
        written earlier, kept as they are), kustomization.yaml, the install values, the state."""
        previous, preserve = self.previous, set(desired["preserve_peers"])
        self.new_objects = dict((layout.manifest_path(obj), obj) for obj in objects)
        manifests = dict((path, layout.manifest_text(self.cluster, obj)) for path, obj in self.new_objects.items())
        kept = [path for path, obj in sorted(previous.objects.items())
                if path not in manifests and ((obj.get("metadata") or {}).get("labels") or {}).get(PEER_LABEL) in preserve]
        for path in kept:
            manifests[path] = previous.files[path]
            self.summary["kept_unreachable"].append(object_ref(previous.objects[path]))
        out = dict(manifests)
        out[layout.KUSTOMIZATION] = layout.kustomization_text(self.cluster, manifests)
        out.update(layout.trust_files(self.cluster, trust))
        holders = list(self.new_objects.values()) + [previous.objects[path] for path in kept]
        delivered = set(obj["metadata"]["name"] for obj in holders if obj["kind"] == "IstioFederation")
        statuses = layout.next_statuses(desired, previous.statuses, now)
        out[layout.STATE_FILE] = layout.state_text(self.cluster, out, dict(
            (name, status) for name, status in statuses.items() if name in delivered))
        return out

    def plan(self, desired_files, want_diff=False):
        """Work out the changes against the directory and record them (summary, diffs)."""
        self.planned = planned = disk.changes(self.directory, self.previous, desired_files)
        self.summary["files"].update(written=sorted(planned["write"]), removed=sorted(planned["remove"]),
                                     unchanged=len(planned["unchanged"]))
        for path in sorted(self.new_objects):
            if path in planned["write"]:
                listed = "created" if planned["write"][path][0] is None else "updated"
                self.summary[listed].append(object_ref(self.new_objects[path]))
            else:
                self.summary["unchanged"] += 1
        self.summary["pruned"] = [object_ref(self.previous.objects[p]) for p in sorted(planned["remove"])
                                  if p in self.previous.objects]
        removed = [(path, (before, None)) for path, before in sorted(planned["remove"].items())]
        for path, (before, after) in (sorted(planned["write"].items()) + removed) if want_diff else ():
            header = "%s/%s" % (self.directory.rstrip("/"), path)
            self.diffs.append({"before": (before or b"").decode("utf-8", "replace"), "before_header": header,
                               "after": (after or b"").decode("utf-8", "replace"), "after_header": header})
        return self.changed

    @property
    def changed(self):
        return bool(self.planned and (self.planned["write"] or self.planned["remove"]))

    def write(self):
        disk.apply(self.directory, self.planned)
