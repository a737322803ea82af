"""`steth tail`: follow log files as `tail -F` does and ship their lines as OTLP log records.

`Follower` finds and reads files (globs, rotation, truncation), `LineReader` splits bytes into
lines with offsets, `OffsetStore` keeps the durable offsets, `Tailer` joins, parses, ships and
commits. The state file format is in docs/formats/tail-state.md.
"""

from stethoscope.sources.tail.config import TailConfig, default_instance, default_state_path
from stethoscope.sources.tail.tailer import Tailer, TailSummary

__all__ = ["TailConfig", "TailSummary", "Tailer", "default_instance", "default_state_path"]
