"""Fixtures shared by the unit tests (pure logic, no torch)."""

from __future__ import annotations

import pytest

from tests.layouts import gpt2_layout


@pytest.fixture(scope="module")
def layout():
    """A GPT-2-small-shaped layout from names and shapes (tests/layouts.py)."""
    return gpt2_layout()
