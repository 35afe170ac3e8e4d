# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""The collection's one error type, and the one place that writes the ``<cluster>: `` prefix."""

import contextlib


def prefixed(cluster, text):
    """``text`` naming the cluster it is about (errors and warnings alike)."""
    return "%s: %s" % (cluster, text) if cluster else text


class MeshfedError(Exception):
    """A failure naming cluster and field, with the HTTP status/reason when there was one; never a secret."""

    def __init__(self, message, status=None, reason=None, cluster=None, field=None):
        super(MeshfedError, self).__init__(message)
        self.message, self.status, self.reason, self.cluster, self.field = message, status, reason, cluster, field

    def __str__(self):
        return prefixed(self.cluster, self.message)

    @property
    def details(self):
        """What ``fail_json`` returns next to ``msg``."""
        return {k: getattr(self, k) for k in ("cluster", "field", "status", "reason") if getattr(self, k) is not None}


class K8sError(MeshfedError):
    """Talking to the API server failed."""


class CertError(MeshfedError):
    """A root CA bundle refused (metadata/ reports it as malformed metadata)."""


class MeshConfigError(MeshfedError):
    """The mesh config cannot be read or edited safely (istio/meshconfig checks its own edits with it)."""


class FactsError(MeshfedError):
    """A cluster's facts cannot be gathered as asked."""


class MetadataError(MeshfedError):
    """Metadata refused; ``reason`` is one of the refusal codes docs/design.md lists (``fetch``, ``tls``, ``signature``...)."""

    def __init__(self, message, reason="malformed", cluster=None, field=None, status=None):
        super(MetadataError, self).__init__(message, status=status, reason=reason, cluster=cluster, field=field)


class PlanError(MeshfedError):
    """Every problem with the cards, one per line, each naming its cluster and field."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(PlanError, self).__init__("\n".join(self.problems), field="cards")


@contextlib.contextmanager
def about(cluster):
    """Errors raised inside name ``cluster`` unless they already name one."""
    try:
        yield
    except MeshfedError as exc:
        exc.cluster = exc.cluster or cluster
        raise
