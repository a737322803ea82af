"""`--token`: every door (OTLP/HTTP, OTLP/gRPC, the API, the CLI) wants the bearer token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from conftest import (
    PROTOBUF,
    RunningServer,
    ServerFactory,
    cli_env,
    free_port,
    good_spans,
    stored_span_names,
    trace_id_for,
    traces_request,
)
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

TOKEN = "s3cret"
WRONG = {
    "none": {},
    "wrong token": {"Authorization": "Bearer nope"},
    "token prefix": {"Authorization": "Bearer s3cre"},
    "token with more": {"Authorization": "Bearer s3cret2"},
    "wrong scheme": {"Authorization": f"Basic {TOKEN}"},
    "bare token": {"Authorization": TOKEN},
    "empty bearer": {"Authorization": "Bearer"},
}


@pytest.fixture(scope="module")
def guarded(start_module_server: ServerFactory) -> RunningServer:
    """A server started with `--token s3cret`, holding one trace sent with the token."""
    server = start_module_server(token=TOKEN)
    body = traces_request("auth-seed", good_spans("auth-seed")).SerializeToString()
    response = httpx.post(
        f"{server.otlp_url}/v1/traces",
        content=body,
        headers={"Content-Type": PROTOBUF, "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert stored_span_names(server, trace_id_for("auth-seed"), expect=2) == ["good-0", "good-1"]
    return server


def _post_traces(server: RunningServer, headers: dict[str, str], service: str) -> httpx.Response:
    body = traces_request(service, good_spans(service)).SerializeToString()
    return httpx.post(
        f"{server.otlp_url}/v1/traces", content=body, headers={"Content-Type": PROTOBUF, **headers}
    )


@pytest.mark.parametrize("headers", WRONG.values(), ids=WRONG.keys())
def test_otlp_http_without_the_token_is_401(
    guarded: RunningServer, headers: dict[str, str]
) -> None:
    response = _post_traces(guarded, headers, "auth-refused")
    assert response.status_code == 401
    status = status_pb2.Status.FromString(response.content)
    assert status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert "token" in status.message
    assert TOKEN not in response.text


def test_otlp_http_with_the_token_is_200(guarded: RunningServer) -> None:
    for i, scheme in enumerate(("Bearer", "bearer")):
        service = f"auth-http-{i}"
        response = _post_traces(guarded, {"Authorization": f"{scheme} {TOKEN}"}, service)
        assert response.status_code == 200
        assert stored_span_names(guarded, trace_id_for(service), expect=2) == ["good-0", "good-1"]
    # Refused before the good requests above, so it would be stored by now had it been taken.
    assert stored_span_names(guarded, trace_id_for("auth-refused"), expect=0) == []


def test_healthz_needs_no_token(guarded: RunningServer) -> None:
    for port in (guarded.http_port, guarded.ui_port):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


@pytest.fixture(scope="module")
def stub(guarded: RunningServer) -> Iterator[trace_service_pb2_grpc.TraceServiceStub]:
    with grpc.insecure_channel(guarded.grpc_target) as channel:
        yield trace_service_pb2_grpc.TraceServiceStub(channel)


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer nope"),), (("authorization", TOKEN),)],
    ids=["none", "wrong token", "bare token"],
)
def test_grpc_without_the_token_is_unauthenticated(
    stub: trace_service_pb2_grpc.TraceServiceStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Export(traces_request("auth-grpc-refused", good_spans("x")), metadata=metadata)
    assert failed.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "token" in failed.value.details()  # type: ignore[attr-defined]


def test_grpc_with_the_token_is_ok(
    guarded: RunningServer, stub: trace_service_pb2_grpc.TraceServiceStub
) -> None:
    request = traces_request("auth-grpc", good_spans("auth-grpc"))
    response = stub.Export(request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=30)
    assert not response.HasField("partial_success")
    assert stored_span_names(guarded, trace_id_for("auth-grpc"), expect=2) == ["good-0", "good-1"]


API_PATHS = ["/api/services", "/api/traces", f"/api/traces/{trace_id_for('auth-seed').hex()}",
             "/api/logs", "/api/metrics", "/api/stats"]  # fmt: skip


@pytest.mark.parametrize("path", API_PATHS)
def test_api_needs_the_token(guarded: RunningServer, path: str) -> None:
    url = f"{guarded.api_url}{path}"
    for headers in WRONG.values():
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert TOKEN not in response.text
    response = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_api_import_needs_the_token(guarded: RunningServer) -> None:
    response = httpx.post(
        f"{guarded.api_url}/api/import/traces",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401


def test_cli_with_the_token(guarded: RunningServer) -> None:
    found = guarded.steth_json("services", "--token", TOKEN)
    assert "auth-seed" in [row["service"] for row in found["services"]]


def test_cli_with_the_token_in_the_environment(guarded: RunningServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stethoscope.cli.main", "services", "--json",
         "--data", str(guarded.data)],
        capture_output=True, text=True, timeout=60, env={**cli_env(), "STETH_TOKEN": TOKEN},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "auth-seed" in done.stdout


@pytest.mark.parametrize("token_args", [(), ("--token", "nope")], ids=["no token", "wrong token"])
def test_cli_without_the_token_exits_2(guarded: RunningServer, token_args: tuple[str, ...]) -> None:
    code, out, err = guarded.steth("services", "--json", *token_args)
    assert code == 2
    assert out == ""
    assert "token" in err
    assert "Traceback" not in err
    assert TOKEN not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_up_refuses_a_public_address_without_a_token(tmp_path: Path, host: str) -> None:
    command = [
        sys.executable, "-m", "stethoscope.cli.main", "up", "--data", str(tmp_path / "data"),
        "--host", host, "--grpc-port", str(free_port()), "--http-port", str(free_port()),
        "--ui-port", str(free_port()),
    ]  # fmt: skip
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
    ) as process:
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail(f"steth up --host {host} without a token started serving")
    assert process.returncode == 2
    assert "--token" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data" / "server.json").exists()
