# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render one cluster's plan into its directory (see layout.py for what the directory holds)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils.render import files as disk
from ansible_collections.meshfed.istio.plugins.module_utils.render import layout


def object_ref(obj):
    meta = obj["metadata"]
    return "%s %s%s" % (obj["kind"], meta["namespace"] + "/" if meta.get("namespace") else "", meta["name"])


def _text(data):
    return (data or b"").decode("utf-8", "replace")


class Rendering(object):
    """The files of one cluster's render: ``planned`` changes, ``summary`` and ``diffs`` for the module result."""

    def __init__(self, directory, cluster, previous):
        self.directory, self.cluster, self.previous = directory, cluster, previous
        self.planned, self.diffs, self.statuses, self.new_objects = None, [], {}, {}
        self.summary = {"created": [], "updated": [], "pruned": [], "unchanged": 0, "kept_unreachable": [],
                        "conflicts": [], "files": {"written": [], "removed": [], "unchanged": 0}}

    def desired_files(self, desired, objects, trust, now):
        """Every file the directory should hold: manifests (and files kept for preserved peers),
        kustomization.yaml, the install values, the state."""
        manifests = dict((layout.manifest_path(obj), layout.manifest_text(self.cluster, obj)) for obj in objects)
        self.new_objects = dict((layout.manifest_path(obj), obj) for obj in objects)
        kept = layout.kept_for_peers(self.previous.objects, manifests, desired["preserve_peers"])
        for path in kept:
            manifests[path] = self.previous.files[path]
            self.summary["kept_unreachable"].append(object_ref(self.previous.objects[path]))
        out = dict(manifests)
        out[layout.KUSTOMIZATION] = layout.kustomization_text(self.cluster, manifests)
        out.update(layout.trust_files(self.cluster, trust))
        holders = list(self.new_objects.values()) + [self.previous.objects[path] for path in kept]
        delivered = set(obj["metadata"]["name"] for obj in holders if obj["kind"] == "IstioFederation")
        statuses = layout.next_statuses(desired, self.previous.statuses, now)
        self.statuses = dict((name, status) for name, status in statuses.items() if name in delivered)
        out[layout.STATE_FILE] = layout.state_text(self.cluster, out, self.statuses)
        return out

    def plan(self, desired_files, want_diff=False):
        """Work out the changes against the directory and record them (summary, diffs)."""
        self.planned = planned = disk.changes(self.directory, self.previous, desired_files)
        files = self.summary["files"]
        files["written"], files["removed"] = sorted(planned["write"]), sorted(planned["remove"])
        files["unchanged"] = len(planned["unchanged"])
        for path in sorted(self.new_objects):
            if path in planned["write"]:
                listed = "created" if planned["write"][path][0] is None else "updated"
                self.summary[listed].append(object_ref(self.new_objects[path]))
            else:
                self.summary["unchanged"] += 1
        self.summary["pruned"] = [object_ref(self.previous.objects[p]) for p in sorted(planned["remove"])
                                  if p in self.previous.objects]
        if want_diff:
            for path, (before, after) in sorted(planned["write"].items()):
                self._diff(path, before, after)
            for path, before in sorted(planned["remove"].items()):
                self._diff(path, before, None)
        return self.changed

    def _diff(self, path, before, after):
        header = "%s/%s" % (self.directory.rstrip("/"), path)
        self.diffs.append({"before": _text(before), "after": _text(after), "before_header": header,
                           "after_header": header})

    @property
    def changed(self):
        return bool(self.planned and (self.planned["write"] or self.planned["remove"]))

    def write(self):
        disk.apply(self.directory, self.planned)
