"""Comparing answers as JSON: equal, but for the last bits of a score."""

from __future__ import annotations

from typing import Any

import pytest


def assert_same_answers(got: Any, want: Any) -> None:
    """Equal, the scores to float32's last bits (batches of other sizes round differently)."""
    if isinstance(want, dict):
        assert set(got) == set(want)
        for key in want:
            assert_same_answers(got[key], want[key])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert_same_answers(a, b)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-9)
    else:
        assert got == want
