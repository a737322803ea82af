"""`steth watch`: run `steth why` on the last few minutes every tick; report what is new.

Each tick analyses [now - window, now) against the `--baseline-length` before it (held at the
last healthy one while an incident lasts, see `stethoscope.analysis.watch`), through the
server's API when one runs on the data directory (it holds the store's only lock), else on the
store opened read-only for that tick only (so a `steth up` can start between ticks). The
findings go through `stethoscope.analysis.watch.WatchState`: each new finding, recovery and
top-suspect change is printed once, as a line or (`--json`) a JSON line, and POSTed to
`--webhook`. Ticks keep to a fixed schedule without drift; an analysis slower than `--every`
skips the ticks it overran (counted) rather than overlapping them. SIGINT/SIGTERM stop it
cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stethoscope.cli import common
from stethoscope.cli.source import ApiSource, open_source
from stethoscope.errors import DataError, UsageError
from stethoscope.model.timeutil import NS_PER_S, format_ns, now_ns, parse_duration_ns

if TYPE_CHECKING:
    from stethoscope.analysis.watch import WatchEvent
    from stethoscope.cli.webhook import WebhookSender

__all__ = ["WatchOptions", "format_event", "register"]


def register(subparsers: Any) -> None:
    """Add `steth watch` to the CLI."""
    watch = subparsers.add_parser(
        "watch", help="run detection continuously; report each new finding and its recovery"
    )
    common.add_data_args(watch)
    watch.add_argument("--every", default="30s", help="time between analyses (default: 30s)")
    watch.add_argument(
        "--window", default="5m", help="how far back each analysis looks (default: 5m)"
    )
    watch.add_argument(
        "--baseline-length",
        default="15m",
        help="the healthy period compared with, just before the window (default: 15m)",
    )
    watch.add_argument("--webhook", help="POST each event as JSON to this http(s) URL")
    watch.add_argument("--service", help="only what this service depends on, itself included")
    watch.add_argument("--json", action="store_true", help="one JSON object per event")
    watch.set_defaults(handler=run_watch)


@dataclass(frozen=True, kw_only=True)
class WatchOptions:
    """What `steth watch` was asked for, in nanoseconds."""

    every_ns: int
    window_ns: int
    baseline_ns: int
    service: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WatchOptions:
        """Parse and check the duration flags."""
        options = cls(
            every_ns=parse_duration_ns(args.every),
            window_ns=parse_duration_ns(args.window),
            baseline_ns=parse_duration_ns(args.baseline_length),
            service=args.service or None,
        )
        options.validate()
        return options

    def validate(self) -> None:
        """Refuse zero durations."""
        for flag, value in (
            ("--every", self.every_ns),
            ("--window", self.window_ns),
            ("--baseline-length", self.baseline_ns),
        ):
            if value <= 0:
                raise UsageError(f"{flag} must be longer than zero")


def run_watch(args: argparse.Namespace) -> int:
    """Tick until stopped; exit 0 on SIGINT or SIGTERM."""
    options = WatchOptions.from_args(args)
    webhook = _webhook(args.webhook)
    from stethoscope.analysis.watch import WatchState  # only here: it loads the analysis

    state = WatchState()
    data, token = common.data_dir(args), common.token(args)
    with _stop_on_signals() as stopped:
        print(
            f"steth watch: every {args.every}, window {args.window}, on {data}",
            file=sys.stderr,
            flush=True,
        )
        try:
            for tick_ns in _ticks(options.every_ns, stopped):
                since = tick_ns - options.window_ns
                baseline = state.baseline_for(since, options.baseline_ns)
                report = _analyse(data, token, options, (since, tick_ns), baseline)
                if report is None:
                    continue
                for event in state.observe(report, at_ns=tick_ns, baseline=baseline):
                    _emit(event, as_json=args.json, webhook=webhook)
        finally:
            if webhook is not None:
                stats = webhook.close()
                if stats.failed or stats.refused:
                    print(
                        f"steth watch: webhook: {stats.delivered} delivered, {stats.failed} "
                        f"failed, {stats.refused} dropped",
                        file=sys.stderr,
                    )
    if state.evictions:
        print(
            f"steth watch: {state.evictions} findings forgotten (over the limit)", file=sys.stderr
        )
    return 0


def _webhook(url: str | None) -> WebhookSender | None:
    if not url:
        return None
    from stethoscope.cli.webhook import WebhookConfig, WebhookSender

    return WebhookSender(WebhookConfig(url=url))


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM; the previous handlers come back on leaving."""
    stopped = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ticks(every_ns: int, stopped: threading.Event) -> Iterator[int]:
    """Wall-clock times of the ticks, on a fixed monotonic schedule: no drift, no overlap.

    The next tick is due `every` after the previous one was due, not after it finished; a tick
    that finished late skips the ticks it overran (reported on stderr) instead of bunching them.
    """
    every_s = every_ns / NS_PER_S
    due = time.monotonic()
    skipped = 0
    while not stopped.is_set():
        yield now_ns()
        due += every_s
        late = time.monotonic() - due
        if late > 0:
            missed = int(late // every_s) + 1
            due += missed * every_s
            skipped += missed
            print(
                f"steth watch: analysis took longer than --every; {skipped} ticks skipped so far",
                file=sys.stderr,
                flush=True,
            )
        stopped.wait(max(due - time.monotonic(), 0.0))


def _analyse(
    data: Path,
    token: str | None,
    options: WatchOptions,
    window: tuple[int, int],
    baseline: tuple[int, int],
) -> dict[str, Any] | None:
    """The `steth why --json` report of the window; None when it failed (said why on stderr)."""
    since, tick_ns = window
    try:
        with open_source(data, token) as source:
            if isinstance(source, ApiSource):
                return source.why(since, tick_ns, baseline=baseline, service=options.service)
            from stethoscope.analysis.why import explain, scope_for

            scope = scope_for(since, tick_ns, baseline=baseline, service=options.service)
            return explain(source, scope).to_json()
    except DataError as error:
        # The server may be restarting or the store not created yet: try again next tick.
        print(f"steth watch: {format_ns(tick_ns)}: {error}", file=sys.stderr, flush=True)
        return None


def _emit(event: WatchEvent, *, as_json: bool, webhook: WebhookSender | None) -> None:
    body = event.to_json()
    if as_json:
        print(json.dumps(body, default=str), flush=True)
    else:
        print(format_event(event), flush=True)
    if webhook is not None:
        webhook.send(body)


def format_event(event: WatchEvent) -> str:
    """One terminal line: time, severity, service, and what happened."""
    data = event.data
    time_text = format_ns(event.at_ns)
    where = str(data.get("service"))
    if data.get("peer"):
        where = f"{data['peer']} -> {where}"
    if event.event == "finding":
        return f"{time_text}  {data.get('severity', ''):<8}  {where}  {data.get('summary', '')}"
    if event.event == "recovered":
        lasted = _duration_text(event.duration_s or 0.0)
        return (
            f"{time_text}  {'ok':<8}  {where}  recovered after {lasted}: {data.get('kind')} "
            f"(last: {data.get('summary', '')})"
        )
    reasons = ", ".join(data.get("reasons") or [])
    was = f" (was {event.previous})" if event.previous else ""
    return f"{time_text}  {'suspect':<8}  {where}  now the top suspect{was}: {reasons}"


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"
