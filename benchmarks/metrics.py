"""Bytes the API servers sent, from their own metrics (``apiserver_response_sizes``, the body size of
each GET/LIST response before any transport compression), by verb and resource."""

from benchmarks.labtools import _BACKGROUND, _split_labels

_METRIC = "apiserver_response_sizes_sum{"
_COUNT = "apiserver_response_sizes_count{"


def response_sizes(cluster):
    """{(verb, resource): [bytes, responses]} served so far (background resources left out)."""
    status, body = cluster.get("/metrics", timeout=30.0)
    if status != 200:
        raise RuntimeError("%s: /metrics answered %s" % (cluster.name, status))
    out = {}
    for line in body.decode().splitlines():
        for prefix, index in ((_METRIC, 0), (_COUNT, 1)):
            if not line.startswith(prefix):
                continue
            labels, value = line[len(prefix):].rsplit("} ", 1)
            fields = dict(part.split("=", 1) for part in _split_labels(labels))
            resource = fields.get("resource", '""').strip('"')
            verb = fields.get("verb", '""').strip('"').lower()
            if resource in _BACKGROUND or verb == "watch" or not resource:
                continue
            entry = out.setdefault((verb, resource), [0, 0])
            entry[index] += int(float(value))
    return out


def sizes_delta(after, before):
    """{"verb resource": {"bytes": b, "responses": n}} of what happened between two ``response_sizes``."""
    out = {}
    for key in sorted(set(after) | set(before)):
        a, b = after.get(key, [0, 0]), before.get(key, [0, 0])
        if a[1] - b[1]:
            out["%s %s" % key] = {"bytes": a[0] - b[0], "responses": a[1] - b[1]}
    return out


def total_bytes(delta):
    return sum(v["bytes"] for v in delta.values())
