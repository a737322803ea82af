"""Exposition texts into OTLP metrics: the mapping, start times, and input that is not valid."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary
from prometheus_client.exposition import generate_latest

from stethoscope.errors import DataError
from stethoscope.sources.scrape.convert import Conversion, SeriesStarts, convert_families
from stethoscope.sources.scrape.exposition import is_openmetrics, parse_exposition

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
NOW = 1_800_000_000 * 10**9
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def convert(
    text: str, content_type: str = TEXT, *, starts: SeriesStarts | None = None, now: int = NOW
) -> Conversion:
    families = parse_exposition(text.encode(), content_type, max_samples=1000)
    return convert_families(
        families, time_ns=now, starts=starts if starts is not None else SeriesStarts()
    )


def attrs(point: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}


def by_name(conversion: Conversion) -> dict[str, Metric]:
    names = [metric.name for metric in conversion.metrics]
    assert len(names) == len(set(names)), f"a metric was emitted twice: {names}"
    return {metric.name: metric for metric in conversion.metrics}


def values(metric: Metric) -> dict[str, float]:
    """Gauge or sum points as {'k=v,...': value}."""
    data = metric.gauge if metric.WhichOneof("data") == "gauge" else metric.sum
    return {
        ",".join(f"{k}={v}" for k, v in sorted(attrs(p).items())): p.as_double
        for p in data.data_points
    }


# -- the mapping, case by case -----------------------------------------------------------------


def check_text_counter(found: dict[str, Metric], conversion: Conversion) -> None:
    metric = found["http_requests_total"]
    assert metric.WhichOneof("data") == "sum"
    assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == CUMULATIVE
    assert metric.description == "Requests served."
    assert values(metric) == {"code=200,method=GET": 1027.0, "code=400,method=POST": 3.0}
    assert all(p.start_time_unix_nano == NOW for p in metric.sum.data_points)  # first seen now
    assert conversion.samples == 2 and conversion.refused == 0


def check_gauge_untyped(found: dict[str, Metric], conversion: Conversion) -> None:
    assert found["room_temperature_celsius"].WhichOneof("data") == "gauge"
    assert found["room_temperature_celsius"].unit == "celsius"  # from the name's suffix
    assert values(found["room_temperature_celsius"]) == {"": 21.5}
    assert found["some_untyped"].WhichOneof("data") == "gauge"
    assert values(found["some_untyped"]) == {"": 7.0}


def check_text_histogram(found: dict[str, Metric], conversion: Conversion) -> None:
    metric = found["rpc_duration_seconds"]
    assert metric.histogram.aggregation_temporality == CUMULATIVE
    (point,) = metric.histogram.data_points
    assert attrs(point) == {"service": "db"}  # `le` is not an attribute
    assert list(point.explicit_bounds) == [0.05, 0.5, 1.0]
    assert list(point.bucket_counts) == [24, 9, 100, 11]  # per bucket, from cumulative counts
    assert point.count == 144 and point.sum == pytest.approx(53.4)
    assert metric.unit == "seconds"


def check_text_summary(found: dict[str, Metric], conversion: Conversion) -> None:
    (point,) = found["rpc_size_bytes"].summary.data_points
    assert [(q.quantile, q.value) for q in point.quantile_values] == [(0.5, 4.5), (0.99, 77.0)]
    assert point.count == 12 and point.sum == 130.0


def check_openmetrics_created(found: dict[str, Metric], conversion: Conversion) -> None:
    counter = found["jobs_total"]
    (point,) = counter.sum.data_points
    assert point.start_time_unix_nano == 1_700_000_000_500_000_000  # from jobs_created
    assert "jobs_created" not in found
    (hist,) = found["wait_seconds"].histogram.data_points
    assert hist.start_time_unix_nano == 1_700_000_001 * 10**9
    assert found["wait_seconds"].unit == "seconds"  # from # UNIT


def check_info_stateset(found: dict[str, Metric], conversion: Conversion) -> None:
    assert values(found["build_info"]) == {"revision=abc,version=1.2": 1.0}
    assert values(found["door"]) == {"door=open": 1.0, "door=shut": 0.0}
    assert found["door"].WhichOneof("data") == "gauge"


def check_nan_inf(found: dict[str, Metric], conversion: Conversion) -> None:
    got = values(found["odd"])
    assert math.isnan(got["k=nan"]) and got["k=inf"] == math.inf and got["k=-inf"] == -math.inf
    (point,) = found["h"].histogram.data_points
    assert list(point.explicit_bounds) == [1.0] and list(point.bucket_counts) == [2, 1]


def check_escaped_labels(found: dict[str, Metric], conversion: Conversion) -> None:
    (point,) = found["paths"].gauge.data_points
    assert attrs(point) == {"path": "C:\\dir", "msg": 'say "hi"\nbye'}


def check_duplicates(found: dict[str, Metric], conversion: Conversion) -> None:
    assert values(found["dup"]) == {"a=1": 5.0}  # the first one is kept
    assert conversion.refused == 1 and "duplicate" in conversion.reasons[0]


def check_not_cumulative(found: dict[str, Metric], conversion: Conversion) -> None:
    assert "bad_hist" not in found
    assert values(found["fine"]) == {"": 1.0}
    assert conversion.refused == 4 and "malformed histogram" in conversion.reasons[0]


def check_timestamps(found: dict[str, Metric], conversion: Conversion) -> None:
    (point,) = found["stamped"].gauge.data_points
    assert point.time_unix_nano == 1_700_000_000_123 * 10**6  # milliseconds in the text format
    (plain,) = found["plain"].gauge.data_points
    assert plain.time_unix_nano == NOW


CASES = [
    pytest.param(
        TEXT,
        "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n"
        'http_requests_total{method="GET",code="200"} 1027\n'
        'http_requests_total{method="POST",code="400"} 3\n',
        check_text_counter,
        id="text-counter-with-labels",
    ),
    pytest.param(
        TEXT,
        "# TYPE room_temperature_celsius gauge\nroom_temperature_celsius 21.5\nsome_untyped 7\n",
        check_gauge_untyped,
        id="text-gauge-and-untyped",
    ),
    pytest.param(
        TEXT,
        "# TYPE rpc_duration_seconds histogram\n"
        'rpc_duration_seconds_bucket{service="db",le="0.05"} 24\n'
        'rpc_duration_seconds_bucket{service="db",le="0.5"} 33\n'
        'rpc_duration_seconds_bucket{service="db",le="1"} 133\n'
        'rpc_duration_seconds_bucket{service="db",le="+Inf"} 144\n'
        'rpc_duration_seconds_sum{service="db"} 53.4\n'
        'rpc_duration_seconds_count{service="db"} 144\n',
        check_text_histogram,
        id="text-histogram",
    ),
    pytest.param(
        TEXT,
        "# TYPE rpc_size_bytes summary\n"
        'rpc_size_bytes{quantile="0.99"} 77\nrpc_size_bytes{quantile="0.5"} 4.5\n'
        "rpc_size_bytes_sum 130\nrpc_size_bytes_count 12\n",
        check_text_summary,
        id="text-summary",
    ),
    pytest.param(
        OPENMETRICS,
        "# TYPE jobs counter\njobs_total 4\njobs_created 1700000000.5\n"
        "# TYPE wait_seconds histogram\n# UNIT wait_seconds seconds\n"
        'wait_seconds_bucket{le="1.0"} 1\nwait_seconds_bucket{le="+Inf"} 2\n'
        "wait_seconds_count 2\nwait_seconds_sum 3.5\nwait_seconds_created 1700000001\n# EOF\n",
        check_openmetrics_created,
        id="openmetrics-created",
    ),
    pytest.param(
        OPENMETRICS,
        '# TYPE build info\nbuild_info{version="1.2",revision="abc"} 1\n'
        '# TYPE door stateset\ndoor{door="open"} 1\ndoor{door="shut"} 0\n# EOF\n',
        check_info_stateset,
        id="openmetrics-info-stateset",
    ),
    pytest.param(
        TEXT,
        'odd{k="nan"} NaN\nodd{k="inf"} +Inf\nodd{k="-inf"} -Inf\n'
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 3\nh_count 3\nh_sum 9\n',
        check_nan_inf,
        id="nan-and-inf",
    ),
    pytest.param(
        TEXT,
        'paths{path="C:\\\\dir",msg="say \\"hi\\"\\nbye"} 1\n',
        check_escaped_labels,
        id="escaped-label-values",
    ),
    pytest.param(
        TEXT,
        'dup{a="1"} 5\ndup{a="1"} 6\n',
        check_duplicates,
        id="duplicated-series",
    ),
    pytest.param(
        TEXT,
        '# TYPE bad_hist histogram\nbad_hist_bucket{le="1"} 5\nbad_hist_bucket{le="+Inf"} 2\n'
        "bad_hist_count 2\nbad_hist_sum 1\nfine 1\n",
        check_not_cumulative,
        id="histogram-buckets-not-cumulative",
    ),
    pytest.param(
        TEXT,
        "stamped 1 1700000000123\nplain 2\n",
        check_timestamps,
        id="explicit-timestamps",
    ),
]


@pytest.mark.parametrize(("content_type", "text", "check"), CASES)
def test_conversion(content_type: str, text: str, check: Any) -> None:
    conversion = convert(text, content_type)
    check(by_name(conversion), conversion)


def test_python_client_text_created_gauges_become_start_times() -> None:
    registry = CollectorRegistry()
    Counter("orders", "Orders", ["kind"], registry=registry).labels("a").inc(2)
    Histogram("delay_seconds", "Delay", registry=registry).observe(0.2)
    Summary("load_bytes", "Load", registry=registry).observe(3)
    conversion = convert(generate_latest(registry).decode())
    found = by_name(conversion)
    assert not [name for name in found if name.endswith("_created")]
    starts = [
        found["orders_total"].sum.data_points[0].start_time_unix_nano,
        found["delay_seconds"].histogram.data_points[0].start_time_unix_nano,
        found["load_bytes"].summary.data_points[0].start_time_unix_nano,
    ]
    assert all(abs(start - NOW) > 10**9 for start in starts)  # the client's, not first-seen
    assert conversion.samples > len(found)  # the _created samples still count as scraped


def test_start_time_is_kept_and_moves_on_a_reset() -> None:
    starts = SeriesStarts()
    step = 15 * 10**9

    def start_after(value: int, at: int) -> int:
        found = by_name(
            convert(f"# TYPE c_total counter\nc_total {value}\n", starts=starts, now=at)
        )
        return int(found["c_total"].sum.data_points[0].start_time_unix_nano)

    assert start_after(10, NOW) == NOW
    assert start_after(12, NOW + step) == NOW  # the same series: same start
    assert start_after(3, NOW + 2 * step) == NOW + 2 * step - 10**6  # reset: just before now
    assert start_after(5, NOW + 3 * step) == NOW + 2 * step - 10**6
    convert("other 1\n", starts=starts, now=NOW + 4 * step)  # the counter vanished
    assert starts.tracked() == 0
    assert start_after(7, NOW + 5 * step) == NOW + 5 * step  # back again: a new series


def test_content_type_picks_the_parser() -> None:
    assert is_openmetrics("application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert not is_openmetrics("text/plain; version=0.0.4")
    assert not is_openmetrics("")
    # The text parser takes OpenMetrics' `# EOF` as a comment; OpenMetrics refuses a missing one.
    assert convert("a 1\n# EOF\n", TEXT).samples == 1
    with pytest.raises(DataError, match="OpenMetrics"):
        convert("a 1\n", OPENMETRICS)


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        pytest.param(TEXT, b"<html><body>Not here</body></html>\n", "Prometheus text", id="html"),
        pytest.param(TEXT, b'{"status": "ok"}\n', "Prometheus text", id="json"),
        pytest.param(TEXT, b"metric{a=b} 1\n", "Prometheus text", id="unquoted-label"),
        pytest.param(TEXT, b"metric abc\n", "Prometheus text", id="value-not-a-number"),
        pytest.param(TEXT, b'metric{a="1"\n', "Prometheus text", id="unclosed-labels"),
        pytest.param(TEXT, b"caf\xe9 1\n", "not UTF-8", id="invalid-utf8"),
        pytest.param(OPENMETRICS, b"a 1\n", "OpenMetrics", id="openmetrics-without-eof"),
        pytest.param(OPENMETRICS, b"a 1\n\n# EOF\n", "OpenMetrics", id="openmetrics-blank-line"),
        pytest.param(
            OPENMETRICS, b"# TYPE c counter\nc_total -1\n# EOF\n", "OpenMetrics", id="negative"
        ),
        pytest.param(
            TEXT, b"".join(b"s%d 1\n" % i for i in range(1001)), "1000 samples", id="too-many"
        ),
    ],
)
def test_input_that_is_not_an_exposition_is_a_data_error(
    content_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        parse_exposition(body, content_type, max_samples=1000)


_TOKEN = st.sampled_from(
    ["# TYPE", "# HELP", "# UNIT", "# EOF", "counter", "histogram", "summary", "gauge", "info",
     "stateset", "x", "x_total", "x_bucket", "x_count", "x_sum", "x_created", "{", "}", "=",
     '"', "le", '"+Inf"', '"0.5"', "quantile", ",", " ", "1", "-1", "NaN", "+Inf", "1e400",
     "9e18", "17e8", "\\", "\n"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_TOKEN, max_size=40).map("".join),
    st.sampled_from([TEXT, OPENMETRICS]),
)
def test_any_text_parses_or_is_a_data_error(text: str, content_type: str) -> None:
    try:
        families = parse_exposition(text.encode(), content_type, max_samples=1000)
    except DataError:
        return
    conversion = convert_families(families, time_ns=NOW, starts=SeriesStarts())
    for metric in conversion.metrics:
        metric.SerializeToString()  # every field within what OTLP can carry
