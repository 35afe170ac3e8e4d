"""An in-memory stand-in for plugins/module_utils/k8s.Client: objects by path, every request logged."""

import copy

from ansible_collections.meshfed.istio.plugins.module_utils.k8s import K8sError


class FakeClient:
    server = "https://fake.invalid"

    def __init__(self, objects=None, lists=None, cluster="cluster-x"):
        self.objects = dict(objects or {})      # path -> object (GET)
        self.lists = dict(lists or {})          # (path, selector) or path -> [items]
        self.cluster = cluster
        self.requests = []                      # (verb, path, extra)
        self.calls = {}

    def _log(self, verb, path, extra=None):
        self.requests.append((verb, path, extra))
        self.calls[verb] = self.calls.get(verb, 0) + 1

    def get(self, path, what=None):
        self._log("get", path)
        obj = self.objects.get(path)
        return copy.deepcopy(obj)

    def list(self, path, label_selector=None, what=None):
        self._log("list", path, label_selector)
        if (path, label_selector) in self.lists:
            return copy.deepcopy(self.lists[(path, label_selector)])
        if path in self.lists:
            return copy.deepcopy(self.lists[path])
        raise K8sError("not served: %s" % path, status=404)

    def apply(self, path, body, dry_run=False, what=None):
        self._log("apply", path, {"dry_run": dry_run, "body": body})
        return body

    def merge_patch(self, path, body, dry_run=False, what=None):
        self._log("patch", path, {"dry_run": dry_run, "body": body})
        return body

    def delete(self, path, resource_version=None, what=None):
        self._log("delete", path, {"resource_version": resource_version})
        return True
