"""The checkout service: reads the cart, quotes shipping, charges payment, queues the order.

Its exception fault breaks one code path, the promotion applied to carts of several products:
an uncaught exception, logged with its traceback by the server, answered with a 500.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
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
from stethoscope.demo.services.orderqueue import OrderQueue

__all__ = ["main"]

log = logging.getLogger("checkout")
PAYMENT_TIMEOUT_S = 2.0
PROMOTIONS = {"bundle": 5}  # percent off carts of two products or more


def apply_promotion(items: list[dict[str, Any]], total: int, state: FaultState) -> int:
    """The bundle discount; under the exception fault its lookup uses a key that is not there."""
    if len({item["sku"] for item in items}) < 2:
        return total
    name = "bundle-v2" if state.active("exception") is not None else "bundle"
    return total - total * PROMOTIONS[name] // 100


class Checkout:
    """One checkout: the calls in order, each failure mapped to the status to answer."""

    def __init__(self, flags: Any, state: FaultState, queue: OrderQueue) -> None:
        self.flags, self.state, self.queue = flags, state, queue
        self.http = client()

    async def run(self, user: str) -> Response:
        cart = await self.http.get(f"{self.flags.cart}/carts/{user}")
        if cart.status_code != 200:
            log.error("cart service answered %d for %s", cart.status_code, user)
            return JSONResponse({"error": "cart unavailable"}, status_code=502)
        items = cart.json()["items"]
        if not items:
            return JSONResponse({"error": "cart is empty"}, status_code=400)
        currencies = {item["currency"] for item in items}
        if len(currencies) > 1:
            log.error("cart of %s mixes currencies %s; cannot charge", user, sorted(currencies))
            return JSONResponse({"error": "mixed currencies"}, status_code=409)
        subtotal = sum(item["price_cents"] * item["qty"] for item in items)
        total = apply_promotion(items, subtotal, self.state)
        count = sum(item["qty"] for item in items)
        quote = await self.http.post(f"{self.flags.shipping}/quote", json={"items": count})
        if quote.status_code != 200:
            log.error("shipping quote failed with %d", quote.status_code)
            return JSONResponse({"error": "shipping unavailable"}, status_code=502)
        total += int(quote.json()["cost_cents"])
        order_id = f"o-{uuid.uuid4().hex[:12]}"
        charged = await self.http.post(
            f"{self.flags.payment}/charges",
            json={"order_id": order_id, "amount_cents": total, "currency": currencies.pop()},
            timeout=PAYMENT_TIMEOUT_S,
        )
        if charged.status_code != 200:
            log.error("payment for %s failed with %d", order_id, charged.status_code)
            return JSONResponse({"error": "payment failed"}, status_code=502)
        order = {
            "order_id": order_id,
            "user": user,
            "items": items,
            "total_cents": total,
            "charge_id": charged.json().get("charge_id"),
        }
        depth = await run_in_threadpool(self.queue.enqueue, order)
        await self.http.delete(f"{self.flags.cart}/carts/{user}")
        log.info("order %s placed for %s: %d cents (queue depth %d)", order_id, user, total, depth)
        return JSONResponse({"order_id": order_id, "total_cents": total})


def make_routes(checkout: Checkout) -> list[Route]:
    """POST /checkout/{user}."""

    async def place_order(request: Request) -> Response:
        user = request.path_params["user"]
        try:
            return await checkout.run(user)
        except httpx.TimeoutException as error:
            log.error("checkout of %s timed out calling %s", user, error.request.url)
            return JSONResponse({"error": "dependency timed out"}, status_code=504)
        except httpx.TransportError as error:
            log.error("checkout of %s could not reach %s: %s", user, error.request.url, error)
            return JSONResponse({"error": "dependency unreachable"}, status_code=503)

    return [Route("/checkout/{user}", place_order, methods=["POST"])]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the checkout service."""
    flags = parse_flags(
        "demo checkout service",
        argv,
        [
            ("--cart", {"required": True, "help": "cart service URL"}),
            ("--payment", {"required": True, "help": "payment service URL"}),
            ("--shipping", {"required": True, "help": "shipping service URL"}),
            ("--queue", {"type": Path, "required": True, "help": "order queue SQLite file"}),
        ],
    )
    configure_logging("checkout")
    state = FaultState.from_env()
    state.start()
    checkout = Checkout(flags, state, OrderQueue(flags.queue))
    app = build_app(make_routes(checkout), state=state, error_message="checkout failed")
    serve(app, port=flags.port, log=log)


if __name__ == "__main__":
    main(sys.argv[1:])
