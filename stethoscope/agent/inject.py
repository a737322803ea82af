"""The environment `steth run` gives the program it supervises.

Every child gets the standard OpenTelemetry variables, so that an SDK already in it (any
language) reports to steth under the service and instance `steth run` was given:
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES (service.instance.id set, the user's other keys
kept), OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and, with a token,
OTEL_EXPORTER_OTLP_HEADERS carrying `Authorization=Bearer%20<token>`. Per-signal overrides
(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, ..._HEADERS, ...) are removed: they would send past steth.

A Python child (see `stethoscope.agent.detect`) also gets zero-code instrumentation, the
mechanism of `opentelemetry-instrument`: our bootstrap directory first on PYTHONPATH, whose
`sitecustomize` starts auto-instrumentation (see `bootstrap/sitecustomize.py`). Traces and
metrics go over OTLP; OTLP logs are off because `steth run` already captures stdout and stderr,
and log correlation puts `trace_id=<32 hex>` into the lines `logging` prints instead.

Not instrumented although Python: `python -I`/`-E` (PYTHONPATH ignored) and `python -S` (no
`site`, so no sitecustomize). Python processes the child starts inherit the environment, so
they are instrumented too and report under the same service and instance.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from stethoscope.agent.detect import is_python_command
from stethoscope.errors import UsageError

__all__ = [
    "AGENT_PATH_VAR",
    "AGENT_PYTHON_VAR",
    "BOOTSTRAP_DIR",
    "PYTHON_DEFAULTS",
    "child_environment",
]

BOOTSTRAP_DIR = Path(__file__).resolve().parent / "bootstrap"
# Read by bootstrap/sitecustomize.py (which cannot import this module): where steth's own
# OpenTelemetry packages live, and the interpreter they were built for.
AGENT_PATH_VAR = "STETH_AGENT_PATH"
AGENT_PYTHON_VAR = "STETH_AGENT_PYTHON"
INSTANCE_KEY = "service.instance.id"
SIGNALS = ("TRACES", "METRICS", "LOGS")
# Set for an instrumented Python child whatever the environment says: steth is the destination.
PYTHON_FORCED = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    # stdout/stderr are captured already: no second copy of each record over OTLP, and no
    # OTel logging handler doing the work of one.
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION": "false",
    "OTEL_PYTHON_LOG_CORRELATION": "true",  # `logging` lines print trace_id=... span_id=...
}
# Tuning an instrumented Python child gets unless its environment already says otherwise.
PYTHON_DEFAULTS = {
    "OTEL_BSP_SCHEDULE_DELAY": "1000",  # spans reach steth within a second, not five
    "OTEL_METRIC_EXPORT_INTERVAL": "10000",  # HTTP duration histograms every 10 s, not 60
    "OTEL_PROPAGATORS": "tracecontext,baggage",
    # The stable HTTP and database attribute names (http.response.status_code, url.full, ...)
    # rather than the old ones the instrumentations still emit by default.
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http,database",
}
# A module of each package a child without OpenTelemetry borrows (regular packages, since
# namespace packages have no one directory); their sys.path entries go into AGENT_PATH_VAR.
BORROWED_MODULES = (
    "opentelemetry.trace",
    "opentelemetry.sdk.trace",
    "opentelemetry.instrumentation.auto_instrumentation",
    "opentelemetry.distro",
    "opentelemetry.exporter.otlp.proto.http",
    "google.protobuf",
    "requests",
    "wrapt",
)


def child_environment(
    argv: Sequence[str],
    base_env: Mapping[str, str],
    *,
    service: str,
    instance: str,
    endpoint: str,
    token: str | None,
    instrument: bool = True,
) -> dict[str, str]:
    """The environment for the child running `argv`, built from `base_env` (not changed)."""
    _validate(argv, service=service, instance=instance, endpoint=endpoint, token=token)
    env = dict(base_env)
    for signal in SIGNALS:
        for setting in ("ENDPOINT", "PROTOCOL", "HEADERS"):
            env.pop(f"OTEL_EXPORTER_OTLP_{signal}_{setting}", None)
    env["OTEL_SERVICE_NAME"] = service
    env["OTEL_RESOURCE_ATTRIBUTES"] = _with_item(
        base_env.get("OTEL_RESOURCE_ATTRIBUTES", ""), INSTANCE_KEY, instance, fold_case=False
    )
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint.rstrip("/")
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    if token is not None:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = _with_item(
            base_env.get("OTEL_EXPORTER_OTLP_HEADERS", ""),
            "Authorization",
            f"Bearer {token}",
            fold_case=True,  # header names are case-insensitive
        )
    if instrument and is_python_command(argv, search_path=base_env.get("PATH")):
        env.update(_python_instrumentation(base_env))
    return env


def _python_instrumentation(base_env: Mapping[str, str]) -> dict[str, str]:
    """The variables that make a Python child start auto-instrumentation."""
    bootstrap = str(BOOTSTRAP_DIR)
    # The user's entries stay as written: an empty one means the working directory.
    user_path = base_env.get("PYTHONPATH", "")
    kept = (
        [entry for entry in user_path.split(os.pathsep) if entry != bootstrap] if user_path else []
    )
    return {
        "PYTHONPATH": os.pathsep.join([bootstrap, *kept]),
        AGENT_PATH_VAR: os.pathsep.join(_borrowable_dirs()),
        AGENT_PYTHON_VAR: f"{sys.implementation.cache_tag}{getattr(sys, 'abiflags', '')}",
        **PYTHON_FORCED,
        **{name: base_env.get(name) or value for name, value in PYTHON_DEFAULTS.items()},
    }


@cache
def _borrowable_dirs() -> tuple[str, ...]:
    """The sys.path entries holding steth's OpenTelemetry packages (usually one site-packages)."""
    dirs: list[str] = []
    for name in BORROWED_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        # .../site-packages/opentelemetry/sdk/trace/__init__.py: one level up per dotted part
        # (a package's __init__.py sits one level deeper than a plain module's file).
        depth = len(name.split(".")) - (Path(spec.origin).name != "__init__.py")
        site = str(Path(spec.origin).parents[depth])
        if site not in dirs:
            dirs.append(site)
    return tuple(dirs)


def _with_item(listing: str, key: str, value: str, *, fold_case: bool) -> str:
    """`k=v,...` (the W3C baggage form OTel uses) with `key` set to `value`, other items kept.

    The value is percent-encoded as the OTel environment variable spec requires (a space is
    `%20`); the items kept are copied as written.
    """

    def same_key(item: str) -> bool:
        name = unquote(item.split("=", 1)[0]).strip()
        return name.lower() == key.lower() if fold_case else name == key

    kept = [item.strip() for item in listing.split(",") if item.strip() and not same_key(item)]
    return ",".join([*kept, f"{key}={quote(value, safe='')}"])


def _validate(
    argv: Sequence[str], *, service: str, instance: str, endpoint: str, token: str | None
) -> None:
    if not argv:
        raise UsageError("no command to run: give it after `--`")
    if not service.strip():
        raise UsageError("--service must not be empty")
    if not instance.strip():
        raise UsageError("--instance must not be empty")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--endpoint must be an http:// or https:// URL, not {endpoint!r}")
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise UsageError("--token must be non-empty and without whitespace")
