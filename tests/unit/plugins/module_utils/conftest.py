"""Fixtures shared by the planner tests: the seed scenario's two cluster cards."""

import pytest

from ...cards import BAR, FOO, card


@pytest.fixture
def a():
    return card("cluster-a", services=FOO)


@pytest.fixture
def b():
    return card("cluster-b", services=BAR)
