"""The gateway: the one entry point, spreading catalog reads round-robin over the replicas.

Every dependency failure becomes an answer a client understands: a timeout 504, an unreachable
service 503, a 5xx from behind 502; 4xx answers pass through.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stethoscope.demo.control import FaultState
from stethoscope.demo.services.base import (
    build_app,
    client,
    configure_logging,
    parse_flags,
    serve,
)

__all__ = ["main"]

log = logging.getLogger("gateway")
CHECKOUT_TIMEOUT_S = 8.0  # checkout calls three services in turn


class Gateway:
    """The routes' shared state: the HTTP client and where each dependency is."""

    def __init__(self, flags: Any) -> None:
        self.catalogs = itertools.cycle(flags.catalog.split(","))
        self.cart, self.checkout = flags.cart, flags.checkout
        self.http = client()

    async def send(
        self, name: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | Response:
        """Call a dependency: its answer, or the 502/503/504 to give when it failed."""
        try:
            answer = await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            log.warning("%s timed out: %s %s", name, method, url)
            return JSONResponse({"error": f"{name} timed out"}, status_code=504)
        except httpx.TransportError as error:
            log.error("%s unreachable: %s %s: %s", name, method, url, error)
            return JSONResponse({"error": f"{name} unavailable"}, status_code=503)
        if answer.status_code >= 500:
            log.warning("%s answered %d: %s %s", name, answer.status_code, method, url)
            return JSONResponse({"error": f"{name} failed"}, status_code=502)
        return answer

    async def call(self, name: str, method: str, url: str, **kwargs: Any) -> Response:
        """Call a dependency and relay its answer (or the failure's)."""
        return relay(await self.send(name, method, url, **kwargs))

    def catalog(self) -> str:
        """The next catalog replica."""
        return next(self.catalogs)


def relay(answer: httpx.Response | Response) -> Response:
    """A dependency's answer passed on as ours."""
    if isinstance(answer, Response):
        return answer
    return Response(answer.content, status_code=answer.status_code, media_type="application/json")


def make_routes(gateway: Gateway) -> list[Route]:
    """The public API under /api."""

    async def products(request: Request) -> Response:
        return await gateway.call("catalog", "GET", f"{gateway.catalog()}/products")

    async def product(request: Request) -> Response:
        sku = request.path_params["sku"]
        return await gateway.call("catalog", "GET", f"{gateway.catalog()}/products/{sku}")

    async def cart(request: Request) -> Response:
        user = request.path_params["user"]
        return await gateway.call("cart", "GET", f"{gateway.cart}/carts/{user}")

    async def add_to_cart(request: Request) -> Response:
        user = request.path_params["user"]
        wanted = await request.json()
        url = f"{gateway.catalog()}/products/{wanted['sku']}"
        found = await gateway.send("catalog", "GET", url)
        if isinstance(found, Response) or found.status_code != 200:
            return relay(found)
        item = found.json()
        item["qty"] = int(wanted.get("qty", 1))
        log.info("adding %s for %s", wanted["sku"], user)
        return await gateway.call("cart", "POST", f"{gateway.cart}/carts/{user}/items", json=item)

    async def checkout(request: Request) -> Response:
        user = request.path_params["user"]
        log.info("checkout for %s", user)
        url = f"{gateway.checkout}/checkout/{user}"
        return await gateway.call("checkout", "POST", url, timeout=CHECKOUT_TIMEOUT_S)

    return [
        Route("/api/products", products),
        Route("/api/products/{sku}", product),
        Route("/api/cart/{user}", cart, methods=["GET"]),
        Route("/api/cart/{user}", add_to_cart, methods=["POST"]),
        Route("/api/checkout/{user}", checkout, methods=["POST"]),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the gateway."""
    flags = parse_flags(
        "demo gateway",
        argv,
        [
            ("--catalog", {"required": True, "help": "catalog replica URLs, comma-separated"}),
            ("--cart", {"required": True, "help": "cart service URL"}),
            ("--checkout", {"required": True, "help": "checkout service URL"}),
        ],
    )
    configure_logging("gateway")
    state = FaultState.from_env()
    state.start()
    app = build_app(make_routes(Gateway(flags)), state=state, error_message="gateway failed")
    serve(app, port=flags.port, log=log)


if __name__ == "__main__":
    main(sys.argv[1:])
