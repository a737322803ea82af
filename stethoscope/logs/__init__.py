"""A line of text into a record: header detection (timestamp, level, component) and templates.

`split_header` takes a raw line apart with generic shapes only; `TemplateMiner` gives each
message a stable template id, its template with ``<*>`` for variables and the variable values,
online and with memory bounded by `TemplateMinerConfig.max_templates`.
"""

from stethoscope.logs.header import Header, split_header
from stethoscope.logs.templates import MinedLine, Template, TemplateMiner, TemplateMinerConfig

__all__ = [
    "Header",
    "MinedLine",
    "Template",
    "TemplateMiner",
    "TemplateMinerConfig",
    "split_header",
]
