"""The environment `steth run` builds for its child, read back by the real OTel SDK parsers."""

from __future__ import annotations

import os
import sys

import pytest
from opentelemetry.sdk.resources import OTELResourceDetector
from opentelemetry.util.re import parse_env_headers

from stethoscope.agent.inject import (
    AGENT_PATH_VAR,
    AGENT_PYTHON_VAR,
    BOOTSTRAP_DIR,
    child_environment,
)
from stethoscope.errors import UsageError

ENDPOINT = "http://127.0.0.1:4318"
COMMON = {
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
}
BASE = {"PATH": os.defpath, "HOME": "/home/op", "LANG": "C.UTF-8"}


def env_for(
    argv: list[str], base: dict[str, str] | None = None, **options: object
) -> dict[str, str]:
    settings: dict[str, object] = {
        "service": "shop",
        "instance": "web-1",
        "endpoint": ENDPOINT,
        "token": None,
        **options,
    }
    return child_environment(argv, dict(BASE if base is None else base), **settings)  # type: ignore[arg-type]


def added(env: dict[str, str], base: dict[str, str] = BASE) -> set[str]:
    return {key for key, value in env.items() if base.get(key) != value}


@pytest.mark.parametrize(
    ("argv", "instrument"),
    [
        (["node", "server.js"], True),
        (["sh", "-c", "python3 app.py"], True),
        (["/usr/bin/java", "-jar", "app.jar"], True),
        (["python3", "app.py"], False),
    ],
    ids=["node", "sh-c", "java", "python-with-instrument-off"],
)
def test_uninstrumented_children_get_only_the_otel_variables(
    argv: list[str], instrument: bool
) -> None:
    env = env_for(argv, instrument=instrument)
    assert added(env) == COMMON
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert {k: v for k, v in env.items() if k in BASE} == BASE


def test_a_python_child_gets_the_bootstrap_first_and_its_own_path_after() -> None:
    base = {**BASE, "PYTHONPATH": os.pathsep.join(["/srv/lib", "", "/srv/more"])}
    env = env_for(["python3", "app.py"], base)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOTSTRAP_DIR), "/srv/lib", "", "/srv/more"]
    assert (BOOTSTRAP_DIR / "sitecustomize.py").is_file()
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_LOGS_EXPORTER"] == "none"
    assert env["OTEL_PYTHON_LOG_CORRELATION"] == "true"
    assert env["OTEL_BSP_SCHEDULE_DELAY"] == "1000"
    assert env[AGENT_PYTHON_VAR] == sys.implementation.cache_tag + sys.abiflags
    import opentelemetry.sdk.trace

    assert any(
        opentelemetry.sdk.trace.__file__.startswith(entry)
        for entry in env[AGENT_PATH_VAR].split(os.pathsep)
    )


def test_the_bootstrap_is_not_added_twice() -> None:
    once = env_for(["python3", "app.py"])
    twice = env_for(["python3", "app.py"], {**BASE, "PYTHONPATH": once["PYTHONPATH"]})
    assert twice["PYTHONPATH"] == str(BOOTSTRAP_DIR)


def test_steth_decides_the_destination_and_the_user_tunes_the_rest() -> None:
    base = {
        **BASE,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_SERVICE_NAME": "theirs",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://vendor.example:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://vendor.example/v1/traces",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "api-key=abc",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    }
    env = env_for(["python3", "app.py"], base)
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_LOGS_EXPORTER"] == "none"
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT
    for per_signal in (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    ):
        assert per_signal not in env
    assert env["OTEL_BSP_SCHEDULE_DELAY"] == "200"
    assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http/dup"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert base["OTEL_SERVICE_NAME"] == "theirs"  # the caller's mapping is not changed


RESOURCE_CASES = [
    ("none-set", None, "web-1", {"service.instance.id": "web-1"}),
    (
        "user-keys-kept",
        "deployment.environment=prod,team=payments",
        "web-1",
        {"deployment.environment": "prod", "team": "payments", "service.instance.id": "web-1"},
    ),
    (
        "user-instance-replaced",
        "service.instance.id=old, region=eu",
        "web-1",
        {"region": "eu", "service.instance.id": "web-1"},
    ),
    (
        "instance-needing-encoding",
        "",
        "host:8080,a=b c",
        {"service.instance.id": "host:8080,a=b c"},
    ),
    (
        "user-encoded-value-kept",
        "note=a%2Cb",
        "web-1",
        {"note": "a,b", "service.instance.id": "web-1"},
    ),
]


@pytest.mark.parametrize(
    ("existing", "instance", "expected"),
    [c[1:] for c in RESOURCE_CASES],
    ids=[c[0] for c in RESOURCE_CASES],
)
def test_resource_attributes_as_the_sdk_reads_them(
    monkeypatch: pytest.MonkeyPatch, existing: str | None, instance: str, expected: dict[str, str]
) -> None:
    base = dict(BASE) if existing is None else {**BASE, "OTEL_RESOURCE_ATTRIBUTES": existing}
    env = env_for(["node", "x.js"], base, instance=instance)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", env["OTEL_RESOURCE_ATTRIBUTES"])
    monkeypatch.setenv("OTEL_SERVICE_NAME", env["OTEL_SERVICE_NAME"])
    attributes = dict(OTELResourceDetector().detect().attributes)
    assert attributes == {**expected, "service.name": "shop"}


HEADER_CASES = [
    (
        "plain-token",
        None,
        "s3cret",
        "Authorization=Bearer%20s3cret",
        {"authorization": "Bearer s3cret"},
    ),
    (
        "token-with-reserved-characters",
        None,
        "a+b/c=,d%",
        "Authorization=Bearer%20a%2Bb%2Fc%3D%2Cd%25",
        {"authorization": "Bearer a+b/c=,d%"},
    ),
    (
        "user-headers-kept-their-auth-replaced",
        "x-tenant=blue,authorization=Basic%20Zm9v",
        "s3cret",
        "x-tenant=blue,Authorization=Bearer%20s3cret",
        {"x-tenant": "blue", "authorization": "Bearer s3cret"},
    ),
    ("no-token-leaves-headers-alone", "x-tenant=blue", None, "x-tenant=blue", {"x-tenant": "blue"}),
]


@pytest.mark.parametrize(
    ("existing", "token", "raw", "parsed"),
    [c[1:] for c in HEADER_CASES],
    ids=[c[0] for c in HEADER_CASES],
)
def test_token_header_as_the_sdk_reads_it(
    existing: str | None, token: str | None, raw: str, parsed: dict[str, str]
) -> None:
    base = dict(BASE) if existing is None else {**BASE, "OTEL_EXPORTER_OTLP_HEADERS": existing}
    env = env_for(["python3", "app.py"], base, token=token)
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == raw
    assert dict(parse_env_headers(raw)) == parsed


def test_no_token_no_header() -> None:
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env_for(["python3", "app.py"])


INVALID = [
    ("no-command", {"argv": []}, "no command"),
    ("empty-service", {"service": " "}, "--service"),
    ("empty-instance", {"instance": ""}, "--instance"),
    ("endpoint-without-scheme", {"endpoint": "127.0.0.1:4318"}, "--endpoint"),
    ("endpoint-other-scheme", {"endpoint": "grpc://127.0.0.1:4317"}, "--endpoint"),
    ("empty-token", {"token": ""}, "--token"),
    ("token-with-space", {"token": "a b"}, "--token"),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_settings_are_refused(change: dict[str, object], message: str) -> None:
    argv = change.pop("argv", ["python3", "app.py"])
    with pytest.raises(UsageError, match=message):
        env_for(argv, **change)  # type: ignore[arg-type]
