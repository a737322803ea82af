"""A small HTTP service the agent tests run as a real child: `/hello` calls `/work` elsewhere.

Nothing here knows about OpenTelemetry: whatever traces and trace ids it produces come from
what `steth run` injects. `BACKEND_URL` says where `/work` is (another instance of this app).
"""

from __future__ import annotations

import logging
import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("shop")


async def work(request: Request) -> JSONResponse:
    """The backend's endpoint: logs the item it works on."""
    log.info("working on %s", request.query_params.get("item"))
    return JSONResponse({"done": True})


async def hello(request: Request) -> JSONResponse:
    """The frontend's endpoint: logs, then calls the backend over HTTP."""
    item = request.query_params.get("item", "none")
    log.info("hello for %s", item)
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{os.environ['BACKEND_URL']}/work", params={"item": item})
    return JSONResponse({"backend": answer.json()})


app = Starlette(routes=[Route("/hello", hello), Route("/work", work)])
