"""The catalog: a fixed list of products with prices in one currency (`--currency`).

Replicated twice behind the gateway. A replica started with another currency than its peer is
the demo's config-drift fault: nothing fails here, but carts mixing currencies fail at checkout.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stethoscope.demo.control import FaultState
from stethoscope.demo.services.base import build_app, configure_logging, parse_flags, serve

__all__ = ["PRODUCTS", "main"]

NAMES = ("lamp", "mug", "kettle", "chair", "desk", "rug", "clock", "vase", "shelf", "pillow")
# Twenty products, the same on every replica: sku-01 .. sku-20, prices 4.99 .. 99.99.
PRODUCTS = {
    f"sku-{n:02d}": {"name": f"{NAMES[n % len(NAMES)]} {n}", "price_cents": 499 + 500 * (n - 1)}
    for n in range(1, 21)
}


def make_routes(currency: str, instance: str) -> list[Route]:
    """GET /products and GET /products/{sku}."""
    log = logging.getLogger("catalog")

    def product(sku: str) -> dict[str, object]:
        return {"sku": sku, **PRODUCTS[sku], "currency": currency, "served_by": instance}

    async def list_products(request: Request) -> Response:
        items = [product(sku) for sku in PRODUCTS]
        log.info("listed %d products", len(items))
        return JSONResponse({"products": items})

    async def get_product(request: Request) -> Response:
        sku = request.path_params["sku"]
        if sku not in PRODUCTS:
            log.warning("unknown product %s", sku)
            return JSONResponse({"error": f"no product {sku}"}, status_code=404)
        log.info("product %s looked up", sku)
        return JSONResponse(product(sku))

    return [Route("/products", list_products), Route("/products/{sku}", get_product)]


def main(argv: Sequence[str] | None = None) -> None:
    """Run one catalog replica."""
    flags = parse_flags(
        "demo catalog service",
        argv,
        [("--currency", {"default": "USD", "help": "currency of every price (USD)"})],
    )
    log = configure_logging("catalog")
    state = FaultState.from_env()
    state.start()
    log.info(
        "catalog %s starting with %d products in %s", flags.instance, len(PRODUCTS), flags.currency
    )
    routes = make_routes(flags.currency, flags.instance)
    app = build_app(routes, state=state, error_message="catalog index read failed")
    serve(app, port=flags.port, log=log)


if __name__ == "__main__":
    main(sys.argv[1:])
