"""Unit tests import the collection as ansible_collections.meshfed.istio (make collection links it)."""

import datetime

import pytest

from tests.lab import pki
from tests.collection import ensure_collection_link

ensure_collection_link(importable=True)

NOW = datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc)


def make_cert(*args, **kwargs):
    """tests/lab/pki.py's factory at the unit tests' fixed NOW."""
    return pki.make_cert(*args, now=NOW, **kwargs)


@pytest.fixture(scope="session")
def root():
    return make_cert("Root CA cluster-b")


@pytest.fixture(scope="session")
def other_root():
    return make_cert("Root CA cluster-c")
