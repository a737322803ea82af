"""`steth run`: supervise any program and report its output, lifecycle and health as OTLP."""

from stethoscope.sources.run.config import RestartPolicy, RunConfig
from stethoscope.sources.run.runner import run_command

__all__ = ["RestartPolicy", "RunConfig", "run_command"]
