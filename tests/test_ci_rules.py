"""Rules for the test suite itself: a green CI run means both databases were tested."""

from __future__ import annotations

import pytest

from tests.conftest import PG_ADMIN_URL, require_postgres

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"


@pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
def test_under_ci_a_missing_postgresql_fails_the_test(ci: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"127\.0\.0\.1:1.*CI="):
        require_postgres(UNREACHABLE, {"CI": ci})


@pytest.mark.parametrize("environ", [{}, {"CI": "false"}, {"CI": ""}, {"CI": "0"}])
def test_outside_ci_a_missing_postgresql_skips_the_test(environ: dict[str, str]) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"127\.0\.0\.1:1"):
        require_postgres(UNREACHABLE, environ)


def test_a_reachable_postgresql_is_used_under_ci_and_outside_it() -> None:
    require_postgres(PG_ADMIN_URL, {})  # skips this test, rightly, on a machine without one
    require_postgres(PG_ADMIN_URL, {"CI": "true"})  # neither skips nor fails
