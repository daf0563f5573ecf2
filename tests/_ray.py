"""Shared by the Ray executor tests: one local Ray instance per test module, and the
"same run" check of a Ray run against a local one."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ray_session(request: pytest.FixtureRequest) -> Iterator[None]:
    """A local Ray instance (2 CPUs, no dashboard) for the module (Ray takes seconds to
    start); the test module is pickled by value, so workers need not import it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[request.module.__name__])
    yield
    ray.shutdown()


def same_runs(a: Any, b: Any) -> None:
    """Same queries, same doc ids in the same order, scores within 1e-6 + 2e-6 x |score|
    (SPLADE dot products: torch encodings made in other batches and thread counts differ by
    float32 rounding, up to 1.4e-6 relative measured on Cranfield; see docs/scale-out.md)."""
    assert sorted(a.query_ids) == sorted(b.query_ids)
    for q in a.query_ids:
        ra, rb = a.ranking(q), b.ranking(q)
        assert [d for d, _ in ra] == [d for d, _ in rb], q
        np.testing.assert_allclose([s for _, s in ra], [s for _, s in rb], rtol=2e-6, atol=1e-6)
