"""Starts OpenTelemetry auto-instrumentation inside a Python program that `steth run` supervises.

`steth run` puts this file's directory first on the child's PYTHONPATH; Python's `site` module
imports `sitecustomize` at start-up, before the program, so this runs first. It does what
`opentelemetry-instrument` does, and three things that tool does not:
1. it runs the user's own `sitecustomize`, which this module shadows;
2. when the child's Python has no OpenTelemetry at all, it borrows steth's: the directories in
   STETH_AGENT_PATH are appended to the END of sys.path (the program's own packages still win),
   and only when the interpreter is the one those packages were built for (STETH_AGENT_PYTHON,
   e.g. `cpython-311`), since they include compiled extensions;
3. it never stops the program: a failure is one `steth:` line on stderr and the program runs
   uninstrumented.

This file runs under whatever Python the child uses, so it sticks to syntax old interpreters
parse, and imports nothing of steth's.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

AGENT_PATH_VAR = "STETH_AGENT_PATH"
AGENT_PYTHON_VAR = "STETH_AGENT_PYTHON"
_HERE = os.path.dirname(os.path.realpath(__file__))
# opentelemetry-instrument's own sitecustomize; running it as "the user's" would start OTel twice.
_OTEL_SITECUSTOMIZE_DIR = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")


def _note(message: str) -> None:
    """One line on stderr; nothing else may come of it."""
    try:
        sys.stderr.write(f"steth: {message}\n")
        sys.stderr.flush()
    except Exception:  # a closed or missing stderr must not stop the program either
        pass


def _python_tag() -> str:
    """What compiled packages must match: implementation, version and ABI flags."""
    return f"{sys.implementation.cache_tag}{getattr(sys, 'abiflags', '')}"


def _run_user_sitecustomize() -> None:
    """Run the `sitecustomize` that Python would have imported had this one not come first."""
    import importlib.machinery
    import importlib.util

    search = [entry for entry in sys.path if os.path.realpath(entry or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", search)
    if spec is None or spec.origin is None or spec.loader is None:
        return
    if os.path.dirname(spec.origin).endswith(_OTEL_SITECUSTOMIZE_DIR):
        return
    ours = sys.modules.get("sitecustomize")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # as a plain import would leave it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        raise


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package raises rather than answering
        return False


def _make_opentelemetry_importable() -> bool:
    """True when auto-instrumentation can be imported, borrowing steth's packages if allowed."""
    if _importable("opentelemetry.instrumentation.auto_instrumentation"):
        return True
    if _importable("opentelemetry"):
        # Mixing the child's OpenTelemetry API with steth's SDK risks version skew.
        _note("not instrumenting: this Python has OpenTelemetry without its instrumentation")
        return False
    wanted = os.environ.get(AGENT_PYTHON_VAR, "")
    if wanted != _python_tag():
        _note(
            f"not instrumenting: this Python is {_python_tag()}, "
            f"steth's OpenTelemetry packages are for {wanted or 'an unknown Python'}"
        )
        return False
    for entry in os.environ.get(AGENT_PATH_VAR, "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)
    if _importable("opentelemetry.instrumentation.auto_instrumentation"):
        return True
    _note(f"not instrumenting: no OpenTelemetry found in {AGENT_PATH_VAR}")
    return False


def _start_opentelemetry() -> None:
    """What opentelemetry-instrument's sitecustomize does, with failures raised to us."""
    import inspect

    from opentelemetry.instrumentation.auto_instrumentation import initialize

    if "swallow_exceptions" in inspect.signature(initialize).parameters:
        initialize(swallow_exceptions=False)
    else:  # older releases log failures themselves
        initialize()


def _keep_programs_logging_config(ours: list[logging.Handler]) -> None:
    """Let the program's own `logging.basicConfig()` win over the one log correlation made.

    With OTEL_PYTHON_LOG_CORRELATION the logging instrumentation calls basicConfig() before the
    program runs, which turns the program's own later call into a no-op: its level and format
    would be lost. While the root handlers are still those, a program's call replaces them,
    with the trace ids appended to its format so its lines still carry them.
    """
    original = logging.basicConfig
    trace_fields = {
        "%": " trace_id=%(otelTraceID)s span_id=%(otelSpanID)s",
        "{": " trace_id={otelTraceID} span_id={otelSpanID}",
        "$": " trace_id=${otelTraceID} span_id=${otelSpanID}",
    }

    def basicConfig(**kwargs: Any) -> None:  # noqa: N802 (logging's name)
        style = kwargs.get("style", "%")
        if logging.getLogger().handlers == ours and style in trace_fields:
            fmt = kwargs.get("format") or logging._STYLES[style][1]  # logging's default
            if "otelTraceID" not in fmt:
                fmt += trace_fields[style]
            kwargs.update(force=True, format=fmt)
        original(**kwargs)

    logging.basicConfig = basicConfig


def _main() -> None:
    try:
        _run_user_sitecustomize()
    except Exception as exc:
        _note(f"your sitecustomize failed: {type(exc).__name__}: {exc}")
    try:
        if _make_opentelemetry_importable():
            _start_opentelemetry()
            handlers = list(logging.getLogger().handlers)
            if handlers and os.environ.get("OTEL_PYTHON_LOG_CORRELATION", "").lower() == "true":
                _keep_programs_logging_config(handlers)
    except Exception as exc:
        _note(f"OpenTelemetry not started: {type(exc).__name__}: {exc}")


_main()
