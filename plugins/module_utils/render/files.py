# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render mode on disk: read what an earlier render wrote, work out the changes, write them.

Only files listed in the state file (layout.STATE_FILE) are ever rewritten or removed; a desired file that
exists but was not written by the collection is taken over only when it already holds the desired bytes.
A file is written only when its bytes change, atomically (a temporary file renamed over it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import tempfile

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MeshfedError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import object_key
from ansible_collections.meshfed.istio.plugins.module_utils.render import layout


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise MeshfedError("cannot read %s: %s" % (path, exc.strerror), field="render_dir")


class Previous(object):
    """What an earlier render left in ``directory``: ``files`` (``{path: bytes}``, those still on disk), the
    ``objects`` in them (``{path: object}``, an IstioFederation with its kept status), ``statuses``."""

    def __init__(self, directory, cluster):
        self.state_bytes = _read(os.path.join(directory, layout.STATE_FILE))
        self.has_state = self.state_bytes is not None
        listed, self.statuses = layout.parse_state(cluster, self.state_bytes) if self.has_state else ({}, {})
        self.files, self.objects = {}, {}
        for path in sorted(listed):
            data = _read(os.path.join(directory, path))
            if data is None:
                continue
            self.files[path] = data
            obj = layout.parse_manifest(path, data) if path.endswith(".yaml") else None
            if obj is not None:
                if obj["kind"] == "IstioFederation" and obj["metadata"].get("name") in self.statuses:
                    obj = dict(obj, status=self.statuses[obj["metadata"]["name"]])
                self.objects[path] = obj

    def existing(self):
        """``{key: object}`` of the rendered objects, as reconcile's list_existing keys them."""
        return dict((object_key(obj), obj) for obj in self.objects.values())


def changes(directory, previous, desired_files):
    """``{"write": {path: (before, after)}, "remove": {path: before}, "unchanged": [paths]}``.

    ``desired_files`` maps every path the directory should hold (state file included) to its bytes."""
    out = {"write": {}, "remove": {}, "unchanged": []}
    for path, after in sorted(desired_files.items()):
        before = previous.state_bytes if path == layout.STATE_FILE else previous.files.get(path)
        if before is None:
            before = _read(os.path.join(directory, path))
            if before is not None and before != after and path != layout.STATE_FILE:
                raise MeshfedError("%s exists and was not written by meshfed.istio (not in %s); move it away or "
                                   "render into another directory" % (os.path.join(directory, path),
                                                                      layout.STATE_FILE), field="render_dir")
        if before == after:
            out["unchanged"].append(path)
        else:
            out["write"][path] = (before, after)
    for path in sorted(set(previous.files) - set(desired_files)):
        out["remove"][path] = previous.files[path]
    return out


def apply(directory, planned):
    """Write and remove what :func:`changes` planned (the state file last, so a failed run is redone)."""
    for path in sorted(planned["write"], key=lambda p: (p == layout.STATE_FILE, p)):
        target = os.path.join(directory, path)
        parent = os.path.dirname(target)
        try:
            os.makedirs(parent, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=parent, prefix=".meshfed-")
            with os.fdopen(handle, "wb") as out:
                out.write(planned["write"][path][1])
            os.chmod(tmp, 0o644)
            os.rename(tmp, target)
        except OSError as exc:
            raise MeshfedError("cannot write %s: %s" % (target, exc.strerror), field="render_dir")
    for path in sorted(planned["remove"]):
        target = os.path.join(directory, path)
        if os.path.exists(target):
            os.remove(target)
        parent = os.path.dirname(target)
        if parent != directory.rstrip("/") and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
