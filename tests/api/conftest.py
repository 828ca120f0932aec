"""Fixtures shared by the API tests."""

import pytest

from tests.helpers.upstream import mock_openrouter


@pytest.fixture
def upstream(requests_mock):
    """OpenRouter faked with requests-mock: the model list and a completion of 10 + 20 tokens."""
    return mock_openrouter(requests_mock)
