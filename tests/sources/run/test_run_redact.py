"""Secrets never leave `steth run`: environment values, arguments and URL credentials."""

from __future__ import annotations

import pytest

from stethoscope.sources.run.redact import (
    REDACTED,
    redact_argv,
    redact_environment,
    redact_text,
)

ENV_CASES = [
    pytest.param("DB_PASSWORD", "hunter2", REDACTED, id="password"),
    pytest.param("MYSQL_PASSWD", "hunter2", REDACTED, id="passwd"),
    pytest.param("github_token", "ghp_x", REDACTED, id="lower-case token"),
    pytest.param("STRIPE_API_KEY", "sk_live", REDACTED, id="api key"),
    pytest.param("AWS_SECRET_ACCESS_KEY", "abc", REDACTED, id="secret"),
    pytest.param("GOOGLE_APPLICATION_CREDENTIALS_JSON", "{}", REDACTED, id="credentials"),
    pytest.param("BASIC_AUTH", "a:b", REDACTED, id="auth"),
    pytest.param("PRIVATE_PEM", "-----BEGIN", REDACTED, id="private"),
    pytest.param("SESSION_SIGNING", "x", REDACTED, id="session"),
    pytest.param("COOKIE_JAR", "x", REDACTED, id="cookie"),
    pytest.param(
        "OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer x", REDACTED, id="otlp headers"
    ),
    pytest.param(
        "DATABASE_URL",
        "postgres://app:s3cret@db:5432/x",
        f"postgres://{REDACTED}@db:5432/x",
        id="url userinfo",
    ),
    pytest.param(
        "REPO",
        "https://ghp_tok@github.com/o/r",
        f"https://{REDACTED}@github.com/o/r",
        id="url user only",
    ),
    pytest.param("LOG_LEVEL", "debug", "debug", id="plain value kept"),
    pytest.param("PWD", "/srv/app", "/srv/app", id="working directory kept"),
    pytest.param(
        "UPSTREAM", "http://api:8080/v1", "http://api:8080/v1", id="url without userinfo kept"
    ),
    pytest.param("OWNER", "ops@example.com", "ops@example.com", id="email kept"),
]


@pytest.mark.parametrize(("name", "value", "expected"), ENV_CASES)
def test_environment_values_are_withheld(name: str, value: str, expected: str) -> None:
    assert redact_environment({name: value}) == {name: expected}


ARGV_CASES = [
    pytest.param(
        ["app", "--password=hunter2"], ["app", f"--password={REDACTED}"], id="option with equals"
    ),
    pytest.param(
        ["app", "--api-token", "abc", "-v"],
        ["app", "--api-token", REDACTED, "-v"],
        id="option then value",
    ),
    pytest.param(
        ["app", "--auth", "--port", "80"],
        ["app", "--auth", "--port", "80"],
        id="flag without value",
    ),
    pytest.param(
        ["env", "SECRET_KEY=abc", "app"], ["env", f"SECRET_KEY={REDACTED}", "app"], id="assignment"
    ),
    pytest.param(
        ["curl", "https://u:p@h/x"], ["curl", f"https://{REDACTED}@h/x"], id="url in argument"
    ),
    pytest.param(
        ["app", "--db=mysql://root:pw@h/d"],
        ["app", f"--db=mysql://{REDACTED}@h/d"],
        id="url in option",
    ),
    pytest.param(
        ["python", "app.py", "--port", "8080"],
        ["python", "app.py", "--port", "8080"],
        id="ordinary arguments kept",
    ),
]


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
def test_arguments_are_redacted(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


def test_every_url_in_a_text_is_redacted() -> None:
    text = "a=http://x:1@h1 b=redis://:pw@h2:6379/0"
    assert redact_text(text) == f"a=http://{REDACTED}@h1 b=redis://{REDACTED}@h2:6379/0"
