"""The egress tier.

Every test here that takes `executor` or `make_executor` runs on each engine (Docker, and
Kubernetes through the API double): see tests/support/engine_cases.py.
"""

from tests.support.engine_cases import (  # noqa: F401 - pytest finds the hook and fixtures here
    engine,
    executor,
    make_executor,
    pytest_collection_modifyitems,
    pytest_generate_tests,
)
