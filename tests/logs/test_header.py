"""Header detection on the prefixes that real programs print, as a table of named cases."""

from __future__ import annotations

import pytest

from stethoscope.logs.header import Header, split_header

CASES = {
    "iso-8601 with zone": (
        "2024-03-01T12:00:00.123Z ERROR db: connection refused",
        Header("2024-03-01T12:00:00.123Z", "ERROR", "db", "connection refused"),
    ),
    "python logging": (
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.App: Created app 7",
        Header("2015-10-18 18:01:47,978", "INFO", "org.apache.hadoop.App", "Created app 7"),
    ),
    "hdfs compact with pid": (
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
        Header(
            "081109 203615", "INFO", "dfs.DataNode$PacketResponder", "PacketResponder 1 terminating"
        ),
    ),
    "syslog with host and pid": (
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
        Header(
            "Dec 10 06:55:46", None, "sshd[24200]", "Invalid user webmaster from 173.234.31.186"
        ),
    ),
    "apache bracketed": (
        "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        Header(
            "Sun Dec 04 04:47:44 2005", "ERROR", None, "mod_jk child workerEnv in error state 6"
        ),
    ),
    "android pids and letter level": (
        "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogs done",
        Header("03-17 16:13:38.811", "DEBUG", "WindowManager", "printFreezingDisplayLogs done"),
    ),
    "glog level with code": (
        "2024-01-02 03:04:05 E0102 main.go:42: bad config",
        Header("2024-01-02 03:04:05", "ERROR", "main.go:42", "bad config"),
    ),
    "dashes around level and thread": (
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:2181:Election@774] - Notification",
        Header("2015-07-29 17:41:44,747", "INFO", None, "Notification"),
    ),
    "logger name without colon": (
        "2017-05-16 00:00:00.008 25746 INFO nova.compute.manager [req-1] Took 0.2 s",
        Header("2017-05-16 00:00:00.008", "INFO", "nova.compute.manager", "Took 0.2 s"),
    ),
    "pipe separated fields": (
        "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
        Header("20171223-22:15:29:606", None, "Step_LSC", "onStandStepChanged 3579"),
    ),
    "program then dash": (
        "[10.30 16:49:06] chrome.exe - proxy.example.com:5070 open through proxy",
        Header("10.30 16:49:06", None, "chrome.exe", "proxy.example.com:5070 open through proxy"),
    ),
    "no header at all": (
        "Connection to 10.0.0.5:5432 timed out after 30s",
        Header(None, None, None, "Connection to 10.0.0.5:5432 timed out after 30s"),
    ),
    "level word with a colon": (
        "Error: disk full",
        Header(None, "ERROR", None, "disk full"),
    ),
    "a word and colon is no component without a header before it": (
        "Received: 12 messages",
        Header(None, None, None, "Received: 12 messages"),
    ),
    "level without timestamp": (
        "WARN cache: evicting 12 entries\n",
        Header(None, "WARN", "cache", "evicting 12 entries"),
    ),
    "empty line": ("", Header(None, None, None, "")),
}


@pytest.mark.parametrize(("line", "expected"), CASES.values(), ids=CASES.keys())
def test_split_header(line: str, expected: Header) -> None:
    assert split_header(line) == expected
