"""Generic header detection: split a raw log line into timestamp, level, component and message.

Only generic shapes are recognised, the ones that logging libraries and daemons everywhere
print: ISO-8601 and its relatives (``2015-10-18 18:01:47,978``, ``17/06/09 20:10:40``,
``081109 203615``, ``20171223-22:15:29:606``), syslog (``Jun 14 15:16:01``), bracketed
timestamps (``[Sun Dec 04 04:47:44 2005]``), epoch seconds; then, in any order, level words
(``INFO``, ``[error]``, ``W``, glog's ``E0102``), process and thread ids, bracketed thread
names, a host name, and a component ending in a colon (``dfs.DataNode$PacketResponder:``,
``sshd[24200]:``). Nothing here is specific to one system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Header", "split_header"]

_TIME = r"\d{1,2}:\d{1,2}(?::\d{1,2})?(?:[.,:]\d{1,9})?"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_ZONE = r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?"
_TIMESTAMP = re.compile(
    r"(?:"
    # ISO-8601 and the numeric dates of most libraries: 2015-10-18 18:01:47,978, 17/06/09 ...
    rf"\d{{2,4}}[-/.]\d{{1,2}}[-/.]\d{{1,4}}(?:[T\s_-]+{_TIME}|[-.]\d{{2}}\.\d{{2}}\.\d{{2}}(?:\.\d+)?)"
    rf"{_ZONE}"
    # month-day without year (03-17 16:13:38.811) and compact forms (081109 203615, 20171223-22:15)
    rf"|\d{{2}}-\d{{2}}\s+{_TIME}"
    r"|\d{6}\s\d{6}"
    rf"|\d{{8}}[-\sT]{_TIME}"
    # syslog and C's ctime: Jun 14 15:16:01, Sun Dec 04 04:47:44 2005
    rf"|(?:{_DAY},?\s+)?{_MONTH}\s+\d{{1,2}},?\s+(?:\d{{4}}\s+)?{_TIME}(?:\s+\d{{4}})?{_ZONE}"
    r")"
)
_BRACKETED_TIME = re.compile(r"\[([^\[\]]*\d{1,2}:\d{2}:\d{2}[^\[\]]*)\]")
_EPOCH = re.compile(r"1\d{9}(?:\.\d+)?(?=\s)")
_LEVEL = re.compile(
    r"[\[<]?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRIT|"
    r"CRITICAL|ALERT|EMERG|Trace|Debug|Info|Notice|Warn|Warning|Error|Fatal|Critical|"
    r"trace|debug|info|notice|warn|warning|error|fatal|critical|"
    r"[VDIWEF](?=\s)|[IWEF]\d{4}(?=\s))[\]>:]?(?=\s|$)"
)
_PID = re.compile(r"\d{1,10}(?=[\s|])")
_BRACKETED = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\](?=\s)")
_SEPARATOR = re.compile(r"[-|:,]+(?=\s)|\s+|\|")
_COMPONENT = re.compile(
    r"(?P<component>[A-Za-z_][\w.$/@()\-]{0,80}(?:\[\d+\]|:\d+)?)(?::(?=\s|$)|(?=\|))"
)
# A logger name after a level, as log4j and Python print it: nova.compute.manager
_LOGGER = re.compile(r"(?P<component>[A-Za-z_][\w$]*(?:\.[\w$]+)+)(?=\s)")
# "program - message", optionally with one short tag: chrome.exe *64 - open ...
_DASHED = re.compile(r"(?P<component>[^\s\[\]]{1,64})(?: [^\s\-]{1,8})? - (?=\S)")
_HOST = re.compile(r"[A-Za-z][\w.\-]{0,62}(?=\s)")
_LEVELS = {
    "V": "TRACE",
    "D": "DEBUG",
    "I": "INFO",
    "W": "WARN",
    "E": "ERROR",
    "F": "FATAL",
    "WARNING": "WARN",
    "ERR": "ERROR",
    "CRIT": "CRITICAL",
}
_MAX_HEADER_PIECES = 6


@dataclass(frozen=True)
class Header:
    """What the start of a line says: each part None when not found; message the rest."""

    timestamp: str | None
    level: str | None
    component: str | None
    message: str


def split_header(line: str) -> Header:
    """Split one raw line into its timestamp, level, component and message text."""
    line = line.rstrip("\r\n")
    timestamp, pos = _find_timestamp(line)
    level: str | None = None
    component: str | None = None
    for piece in range(_MAX_HEADER_PIECES):
        pos = _skip_separators(line, pos)
        found = _COMPONENT.match(line, pos)
        if found and component is None and (timestamp or level):
            component = found.group("component")
            pos = found.end()
            if line.startswith("|", pos):  # pipe-separated fields may follow
                continue
            break
        found = _LOGGER.match(line, pos) if level and component is None else None
        if found:
            component = found.group("component")
            pos = found.end()
            continue
        found = _LEVEL.match(line, pos) if level is None else None
        if found:
            level = _normalise_level(found.group("level"))
            pos = found.end()
            continue
        found = _PID.match(line, pos) or _BRACKETED.match(line, pos)
        if found and (timestamp or level):
            pos = found.end()
            continue
        found = _HOST.match(line, pos)
        if found and timestamp and piece == 0 and _is_host_then_component(line, found.end()):
            pos = found.end()
            continue
        found = _DASHED.match(line, pos) if timestamp and piece == 0 else None
        if found:
            component = found.group("component")
            pos = found.end()
        break
    return Header(timestamp, level, component, line[pos:].strip())


def _find_timestamp(line: str) -> tuple[str | None, int]:
    """A timestamp at the start (or after one leading token) and where the rest begins."""
    start = _skip_separators(line, 0)
    for candidate in (start, _after_first_token(line, start)):
        if candidate < 0:
            continue
        found = _TIMESTAMP.match(line, candidate) or _BRACKETED_TIME.match(line, candidate)
        if found:
            return found.group(0).strip("[]"), found.end()
    found = _EPOCH.match(line, start)
    if found:
        return found.group(0), found.end()
    return None, 0


def _after_first_token(line: str, start: int) -> int:
    end = line.find(" ", start)
    return -1 if end < 0 or end - start > 64 else end + 1


def _skip_separators(line: str, pos: int) -> int:
    while True:
        found = _SEPARATOR.match(line, pos)
        if not found or found.end() == pos:
            return pos
        pos = found.end()


def _is_host_then_component(line: str, pos: int) -> bool:
    """A host name counts only when a component follows it, as in syslog."""
    return _COMPONENT.match(line, _skip_separators(line, pos)) is not None


def _normalise_level(word: str) -> str:
    upper = word.upper()
    if len(upper) == 5 and upper[0] in "IWEF" and upper[1:].isdigit():
        upper = upper[0]
    return _LEVELS.get(upper, upper)
