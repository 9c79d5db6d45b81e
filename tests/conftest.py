"""Shared fixtures: the vectors in ../shared and hypothesis profiles."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PARITY_SHARED", ROOT.parent / "shared"))

settings.register_profile(
    "default", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _load(name: str) -> dict:
    path = SHARED / "vectors" / name
    if not path.exists():
        pytest.fail(f"missing conformance vectors: {path} (set PARITY_SHARED)")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def public_vectors() -> dict:
    return _load("coinjecture_v1_public.json")


@pytest.fixture(scope="session")
def blake3_vectors() -> dict:
    return _load("blake3_test_vectors.json")
