"""Bounded concurrent writes: plugins/module_utils/kube/parallel.py and the reconciler's ordering with it."""

import threading
import time

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError
from ansible_collections.meshfed.istio.plugins.module_utils.kube.parallel import run_jobs
from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
from ansible_collections.meshfed.istio.plugins.module_utils.reconcile.reconciler import Reconciler

from ...cards import card
from ...fakes import FakeClient, cluster_state
from .test_reconcile import as_existing


class Gauge:
    """Counts calls in flight. Calls wait on a condition, not a clock, so what is observed does not
    depend on the machine's load: with ``hold=n`` the first calls stay in flight until ``n`` of them
    are in flight together (then a moment more, for a call past the limit to show up in the peak);
    with ``fail_on=i`` every other call waits until call ``i`` has failed."""

    GRACE = 0.02  # only how long a call past the limit has to show up; a correct run never waits it out
    SAFETY = 10.0  # a run that never reaches what a call waits for fails its assertion after this

    def __init__(self, hold=None, fail_on=None):
        self.now = self.peak = 0
        self.hold, self.fail_on = hold, fail_on
        self.released = hold is None
        self.failed = threading.Event()
        self.cond = threading.Condition()

    def call(self, value):
        def run():
            with self.cond:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.cond.notify_all()
                if not self.released:
                    self.cond.wait_for(lambda: self.now >= self.hold, timeout=self.SAFETY)
                    self.cond.wait_for(lambda: self.now > self.hold, timeout=self.GRACE)
                    self.released = True
                    self.cond.notify_all()
            try:
                if value == self.fail_on:
                    raise K8sError("boom %s" % value, status=422)
                if self.fail_on is not None:
                    self.failed.wait(self.SAFETY)
                return value
            finally:
                with self.cond:
                    self.now -= 1
                if value == self.fail_on:
                    self.failed.set()
        return run


def test_at_most_limit_in_flight_and_results_recorded_in_job_order():
    gauge, recorded = Gauge(hold=4), []
    jobs = [[(gauge.call(i), recorded.append)] for i in range(12)]
    run_jobs(jobs, 4)
    assert recorded == list(range(12)) and gauge.peak == 4


def test_steps_of_a_job_run_in_order():
    order = []
    jobs = [[(lambda i=i: order.append(("object", i)), lambda _r: None),
             (lambda i=i: order.append(("status", i)), lambda _r: None)] for i in range(6)]
    run_jobs(jobs, 3)
    for i in range(6):
        assert order.index(("object", i)) < order.index(("status", i))


def test_first_error_is_raised_after_recording_what_succeeded():
    gauge, recorded = Gauge(fail_on=2), []
    jobs = [[(gauge.call(i), recorded.append)] for i in range(40)]
    with pytest.raises(K8sError, match="boom 2"):
        run_jobs(jobs, 4)
    assert 0 in recorded and 1 in recorded and 2 not in recorded
    assert len(recorded) < 39  # no new job started once one failed


class SlowClient(FakeClient):
    """A FakeClient whose writes take a little time, so that concurrent writes overlap."""

    def _log(self, verb, path, extra=None):
        if verb in ("apply", "delete"):
            time.sleep(0.005)
        super()._log(verb, path, extra)


def _peers(n, services):
    return [card("cluster-%s" % chr(ord("b") + i), services=[("web", "s%d" % j, [("http", 80, "HTTP")])
                                                             for j in range(services)]) for i in range(n)]


@pytest.mark.parametrize("concurrency", [1, 8])
def test_federations_then_imports_and_the_same_summary_whatever_the_concurrency(concurrency):
    desired = plan(card("cluster-a", services=[]), _peers(3, 5))
    client = SlowClient(cluster_state().objects, cluster_state().lists, cluster="cluster-a")
    rec = Reconciler(client, "cluster-a", "istio-system", write_concurrency=concurrency)
    rec.converge(desired)
    writes = [r for r in client.requests if r[0] in ("apply", "patch")]
    kinds = ["trust" if verb == "patch" else "federation" if "istiofederations" in path else "import"
             for verb, path, _extra in writes]
    assert kinds == ["trust"] + ["federation"] * 6 + ["import"] * 30
    assert sorted(rec.summary["created"]) == sorted(
        "%s %s" % (o["kind"], ("istio-system/" if o["metadata"].get("namespace") else "") + o["metadata"]["name"])
        for o in desired["objects"])
    assert rec.changed and len(rec.summary["created"]) == 33


def test_prune_deletes_imports_before_their_federation_with_concurrency():
    old = plan(card("cluster-a", services=[]), _peers(2, 4))
    client = SlowClient(cluster_state([as_existing(o) for o in old["objects"]]).objects,
                        cluster_state([as_existing(o) for o in old["objects"]]).lists, cluster="cluster-a")
    rec = Reconciler(client, "cluster-a", "istio-system", write_concurrency=8)
    rec.converge(plan(card("cluster-a", services=[]), []))
    deleted = [path.split("/")[-2] for verb, path, _extra in client.requests if verb == "delete"]
    assert deleted == ["serviceentries"] * 8 + ["destinationrules"] * 8 + ["istiofederations"] * 2
    assert len(rec.summary["pruned"]) == 18
