"""In-process planner timing: plan() for one cluster importing peers x services services."""

import statistics
import time

from tests.unit import conftest  # noqa: F401  (puts the collection on sys.path)
from tests.unit.cards import card


def cards(peers, services):
    local = card("cluster-a")
    others = []
    for i in range(peers):
        name = "peer-%02d" % i
        others.append(card(name, services=[("web", "svc-%s-%d" % (name, j), [("http", 8000 + j, "HTTP")])
                                           for j in range(services)],
                           addresses=["192.0.2.%d" % (20 + i)]))
    return local, others


def time_plan(peers=10, services=100, repeat=5):
    """Median CPU seconds of plan() for peers x services imported services (CPU time of this process:
    the planning cost itself, not how long a loaded machine kept the process waiting)."""
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
    local, others = cards(peers, services)
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        result = plan(local, others, namespace="istio-system")
        times.append(time.process_time() - t0)
    assert len(result["objects"]) == peers * (2 * services + 1) + 1, len(result["objects"])
    return round(statistics.median(times), 3)


if __name__ == "__main__":
    print(time_plan())
