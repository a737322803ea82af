"""What `steth import` does: feed files to a running server, or write the store directly."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from stethoscope.cli import common
from stethoscope.errors import DataError, IngestError, Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.server.discovery import ServerAddresses, read_addresses
from stethoscope.server.templating import LogTemplater
from stethoscope.sources.importer import (
    NDJSON,
    ImportSummary,
    LineResult,
    Sink,
    check_paths,
    decode_line,
    import_files,
)
from stethoscope.store.duckdb.store import DuckDBStore

WRITE_ROWS = 200_000
RETRIES = 60


class _DirectSink:
    """Decodes lines and writes them to the store in large transactions."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.templater = LogTemplater()  # imports get templates as live records do
        self.templater.restore(store.template_rows())
        self.pending: list[SignalBatch] = []
        self.rows = 0

    def __call__(self, signal: str, lines: list[bytes]) -> list[LineResult]:
        return [self._one(signal, line) for line in lines]

    def _one(self, signal: str, line: bytes) -> LineResult:
        try:
            batch = decode_line(signal, line)
        except IngestError as error:
            return error
        if batch.accepted:
            self.pending.append(batch)
            self.rows += batch.accepted
            if self.rows >= WRITE_ROWS:
                self.flush()
        return batch

    def flush(self) -> None:
        if self.pending:
            batches, templates = self.templater.annotate(self.pending)
            self.store.write(batches, templates=templates)
        self.pending, self.rows = [], 0


class _ServerSink:
    """Posts chunks of lines to a running server's import endpoint (it holds the store)."""

    def __init__(self, addresses: ServerAddresses, token: str | None) -> None:
        headers = {"Content-Type": NDJSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=addresses.api_url, headers=headers, timeout=120)

    def __call__(self, signal: str, lines: list[bytes]) -> list[LineResult]:
        results: list[LineResult] = []
        for _ in range(RETRIES):
            answer, retry_after = self._post(signal, lines[len(results) :])
            results += answer
            if len(results) == len(lines):
                return results
            time.sleep(retry_after)  # the server took some lines; resend only the rest
        raise Overloaded("the server stayed too busy to take the import; retry later")

    def _post(self, signal: str, lines: list[bytes]) -> tuple[list[LineResult], float]:
        response = self.client.post(f"/api/import/{signal}", content=b"\n".join(lines))
        answer = _json(response)
        if response.status_code in (429, 503):
            return [], float(response.headers.get("Retry-After", "1"))
        if response.status_code != 200:
            raise Rejected(str(answer.get("error") or answer), status=response.status_code)
        return [_line_result(signal, item) for item in answer["lines"]], float(
            answer.get("retry_after") or 1
        )


def _line_result(signal: str, item: dict[str, Any]) -> LineResult:
    if "error" in item:
        return Rejected(item["error"])
    return SignalBatch(
        signal, accepted=item["accepted"], rejected=item["rejected"], reasons=item["reasons"]
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        return dict(response.json())
    except ValueError:
        return {"error": f"server answered {response.status_code}: {response.text[:200]}"}


@contextmanager
def _sink(data: Path, token: str | None) -> Iterator[Sink]:
    addresses = read_addresses(data)
    if addresses is not None:
        yield _ServerSink(addresses, token)
        return
    store = DuckDBStore(data)
    direct = _DirectSink(store)
    try:
        yield direct
        direct.flush()
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    check_paths(args.files)
    total = sum(path.stat().st_size for path in args.files)
    data = common.data_dir(args)
    data.mkdir(parents=True, exist_ok=True)
    with (
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            transient=True,
            disable=args.json,
        ) as progress,
        _sink(data, common.token(args)) as sink,
    ):
        task = progress.add_task("importing", total=total)
        summary = import_files(args.files, sink, lambda n: progress.advance(task, n))
    _report(summary, args.json)
    if not any(summary.accepted.values()) and summary.lines:
        raise DataError("nothing could be imported")
    return 0


def _report(summary: ImportSummary, as_json: bool) -> None:
    if as_json:
        common.print_json(summary.__dict__)
        return
    out = common.console()
    loaded = ", ".join(f"{count:,} {name}" for name, count in _units(summary).items())
    out.print(f"imported {loaded} from {summary.files} file(s), {summary.lines:,} lines")
    if summary.rejected_lines or summary.rejected_records:
        out.print(
            f"[yellow]rejected {summary.rejected_lines:,} line(s) and "
            f"{summary.rejected_records:,} record(s):[/]"
        )
        for problem in summary.problems:
            out.print(f"  {problem}", markup=False)


def _units(summary: ImportSummary) -> dict[str, int]:
    names = {"traces": "spans", "logs": "log records", "metrics": "metric points"}
    return {names[signal]: count for signal, count in summary.accepted.items()}
