"""The Hub vocabulary every stage shares: repo ids, retries, the error messages (the commit itself is tested
through ``push`` and ``deploy-space`` in tests/hub/test_hub.py, against the loopback Hub)."""

from __future__ import annotations

import pytest

from tweet_classifier import hub_client
from tweet_classifier.config import HubConfig

# -- repo ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "namespace", "expected"),
    [
        ("tweet-org/minilm-airline", True, True),
        ("cardiffnlp/tweet_eval", True, True),
        ("Org.1/name_2", True, True),
        ("tweet_eval", True, False),  # a model or Space id needs its owner
        ("tweet_eval", False, True),  # a dataset may be a bare name
        ("not a repo", True, False),
        ("not a repo", False, False),
        ("org/a..b", True, False),
        ("org/a--b", True, False),
        ("org/name-", True, False),
        ("-org/name", True, False),
        ("a/b/c", True, False),
        ("org/name.git", True, False),
        ("org/" + "n" * 97, True, False),
        ("", False, False),
    ],
)
def test_is_repo_id_follows_the_hub_clients_own_rule(name, namespace, expected):
    assert hub_client.is_repo_id(name, namespace=namespace) is expected


def test_check_repo_id_names_the_flag_to_fix():
    assert hub_client.check_repo_id("org/name", "--repo-id") == "org/name"
    for bad in (None, "", "name-only", "org/../x"):
        with pytest.raises(hub_client.HubError, match=r"--space-id must look like ORG/NAME"):
            hub_client.check_repo_id(bad, "--space-id")


# -- retries --------------------------------------------------------------------------------------------


class _FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class _FakeHttpError(Exception):
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"status {status_code}")
        self.response = _FakeResponse(status_code, headers)
        self.server_message = "server says no"


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    waits: list[float] = []
    answers = iter(
        [_FakeHttpError(500), _FakeHttpError(502), _FakeHttpError(503), _FakeHttpError(429, {"Retry-After": "7"})]
    )

    def flaky() -> str:
        error = next(answers, None)
        if error is not None:
            raise error
        return "done"

    config = HubConfig(max_retries=4, retry_base_delay_s=1.0, retry_max_delay_s=3.0)
    assert hub_client.call_with_retries(flaky, "commit", config, sleep=waits.append) == "done"
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_non_transient_errors_are_not_retried():
    waits: list[float] = []

    def forbidden() -> None:
        raise _FakeHttpError(403)

    with pytest.raises(_FakeHttpError):
        hub_client.call_with_retries(forbidden, "commit", HubConfig(), sleep=waits.append)
    assert waits == []
