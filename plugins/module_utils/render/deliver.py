# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Render one cluster's plan into its directory (layout.py: what it holds). Only files the state file lists are ever
rewritten or removed; one the collection did not write is taken over only when it holds the desired bytes. A file is
written only when its bytes change, atomically (a temporary file renamed over it)."""

import os
import tempfile

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MeshfedError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import PEER_LABEL, object_key, object_ref
from ansible_collections.meshfed.istio.plugins.module_utils.render import layout


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MeshfedError("cannot read %s: %s" % (path, exc.strerror), field="render_dir")


class Previous:
    """What an earlier render left in ``directory``: ``files`` (``{path: bytes}``, those still on disk), the
    ``objects`` in them (``{path: object}``, an IstioFederation with its kept status), ``statuses``."""

    def __init__(self, directory, cluster):
        self.state_bytes = _read(os.path.join(directory, layout.STATE_FILE))
        self.has_state = self.state_bytes is not None
        listed, self.statuses = layout.parse_state(cluster, self.state_bytes) if self.has_state else ({}, {})
        self.files = {path: data for path in sorted(listed) if (data := _read(os.path.join(directory, path))) is not None}
        parsed = ((path, layout.parse_manifest(path, data, self.statuses)) for path, data in self.files.items() if path.endswith(".yaml"))
        self.objects = {path: obj for path, obj in parsed if obj is not None}

    def existing(self):
        """``{key: object}`` of the rendered objects, as reconcile's list_existing keys them."""
        return dict((object_key(obj), obj) for obj in self.objects.values())


class Rendering:
    """The files of one cluster's render: ``planned`` changes, ``summary`` and ``diffs`` for the module result."""

    def __init__(self, directory, cluster, previous):
        self.directory, self.cluster, self.previous = directory, cluster, previous
        self.planned, self.diffs, self.new_objects = None, [], {}
        self.summary = {"created": [], "updated": [], "pruned": [], "unchanged": 0, "kept_unreachable": [],
                        "conflicts": [], "files": {"written": [], "removed": [], "unchanged": 0}}

    def desired_files(self, desired, objects, trust, now):
        """Every file the directory should hold (layout.directory); preserved (unreachable) peers' manifests as written before."""
        previous, preserve = self.previous, set(desired["preserve_peers"])
        self.new_objects = {layout.manifest_path(obj): obj for obj in objects}
        kept = {path: obj for path, obj in sorted(previous.objects.items())
                if path not in self.new_objects and (obj["metadata"].get("labels") or {}).get(PEER_LABEL) in preserve}
        self.summary["kept_unreachable"] = [object_ref(obj) for obj in kept.values()]
        delivered = {obj["metadata"]["name"] for obj in [*self.new_objects.values(), *kept.values()] if obj["kind"] == "IstioFederation"}
        statuses = layout.next_statuses(desired, previous.statuses, now)
        return layout.directory(self.cluster, self.new_objects, {path: previous.files[path] for path in kept},
                                trust, {name: status for name, status in statuses.items() if name in delivered})

    def plan(self, desired_files, want_diff=False):
        """Work out the changes against the directory and record them (summary, diffs)."""
        write = {}
        for path, after in sorted(desired_files.items()):
            before = self.previous.state_bytes if path == layout.STATE_FILE else self.previous.files.get(path)
            if before is None:
                before = _read(os.path.join(self.directory, path))
                if before is not None and before != after and path != layout.STATE_FILE:
                    raise MeshfedError("%s exists and was not written by meshfed.istio (not in %s); move it away or "
                                       "render into another directory" % (os.path.join(self.directory, path),
                                                                          layout.STATE_FILE), field="render_dir")
            if before != after:
                write[path] = (before, after)
        remove = dict((path, data) for path, data in sorted(self.previous.files.items()) if path not in desired_files)
        self.planned = {"write": write, "remove": remove}
        self.summary["files"].update(written=sorted(write), removed=sorted(remove), unchanged=len(desired_files) - len(write))
        for path in sorted(self.new_objects):
            if path in write:
                self.summary["created" if write[path][0] is None else "updated"].append(object_ref(self.new_objects[path]))
            else:
                self.summary["unchanged"] += 1
        self.summary["pruned"] = [object_ref(self.previous.objects[p]) for p in sorted(remove) if p in self.previous.objects]
        if want_diff:
            for path, (before, after) in sorted(write.items()) + [(path, (before, None)) for path, before in remove.items()]:
                header = "%s/%s" % (self.directory.rstrip("/"), path)
                self.diffs.append({"before": (before or b"").decode("utf-8", "replace"), "before_header": header,
                                   "after": (after or b"").decode("utf-8", "replace"), "after_header": header})
        return self.changed

    @property
    def changed(self):
        return bool(self.planned and (self.planned["write"] or self.planned["remove"]))

    def write(self):
        """Write and remove the planned files (the state file last, so a failed run is redone)."""
        for path in sorted(self.planned["write"], key=lambda p: (p == layout.STATE_FILE, p)):
            target = os.path.join(self.directory, path)
            parent = os.path.dirname(target)
            try:
                os.makedirs(parent, exist_ok=True)
                handle, tmp = tempfile.mkstemp(dir=parent, prefix=".meshfed-")
                with os.fdopen(handle, "wb") as out:
                    out.write(self.planned["write"][path][1])
                os.chmod(tmp, 0o644)
                os.rename(tmp, target)
            except OSError as exc:
                raise MeshfedError("cannot write %s: %s" % (target, exc.strerror), field="render_dir")
        for path in sorted(self.planned["remove"]):
            target = os.path.join(self.directory, path)
            if os.path.exists(target):
                os.remove(target)
            parent = os.path.dirname(target)
            if parent != self.directory.rstrip("/") and os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)
