"""What the metrics slice adds to the shared tests (see tests/utils/slices.py)."""

from tests.utils.utils import AuthorizationRow

# Public unless METRICS_ALLOWED_NETWORKS says otherwise (tests/api/test_metrics.py).
AUTHORIZATION_ROWS: list[AuthorizationRow] = [
    ("GET", "/metrics", (200, 200, 200, 200, 200, 200), lambda _: ("/metrics", {})),
]
