"""The cart service: each user's cart in its own SQLite file (`--db`).

The store is opened per request with a short busy timeout: when another process holds the
database locked (the demo's store-down fault), requests fail with `database is locked` after that
timeout, the service logs the error and answers 503, as a service whose database is gone does.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stethoscope.demo.control import FaultState
from stethoscope.demo.services.base import build_app, configure_logging, parse_flags, serve

__all__ = ["main"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS cart_items (
    user TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    price_cents INTEGER NOT NULL, currency TEXT NOT NULL, PRIMARY KEY (user, sku))
"""
STORE_TIMEOUT_S = 1.0
MAX_QTY = 10

log = logging.getLogger("cart")


class CartStore:
    """The SQLite file holding every cart (rollback journal: a writer's lock blocks readers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self.connect() as db:
            db.execute(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one request, committed on success."""
        db = sqlite3.connect(self.path, timeout=STORE_TIMEOUT_S)
        try:
            with db:
                yield db
        finally:
            db.close()


def make_routes(store: CartStore) -> list[Route]:
    """GET/DELETE /carts/{user} and POST /carts/{user}/items (sync: SQLite blocks)."""

    def unavailable(error: sqlite3.Error, user: str) -> Response:
        log.error("cart store unavailable for %s: %s", user, error)
        return JSONResponse({"error": "cart store unavailable"}, status_code=503)

    def get_cart(request: Request) -> Response:
        user = request.path_params["user"]
        try:
            with store.connect() as db:
                rows = db.execute(
                    "SELECT sku, qty, price_cents, currency FROM cart_items WHERE user = ?", (user,)
                ).fetchall()
        except sqlite3.Error as error:
            return unavailable(error, user)
        fields = ("sku", "qty", "price_cents", "currency")
        items = [dict(zip(fields, row, strict=True)) for row in rows]
        log.info("cart of %s has %d items", user, len(items))
        return JSONResponse({"user": user, "items": items})

    def store_item(user: str, item: dict[str, object], qty: int) -> Response:
        try:
            with store.connect() as db:
                db.execute(
                    "INSERT INTO cart_items VALUES (?, ?, ?, ?, ?) ON CONFLICT (user, sku) "
                    f"DO UPDATE SET qty = min(qty + excluded.qty, {MAX_QTY})",
                    (user, item["sku"], qty, item["price_cents"], item["currency"]),
                )
        except sqlite3.Error as error:
            return unavailable(error, user)
        log.info("added %d x %s to the cart of %s", qty, item["sku"], user)
        return JSONResponse({"user": user, "sku": item["sku"], "qty": qty}, status_code=201)

    async def add_item(request: Request) -> Response:
        user = request.path_params["user"]
        item = await request.json()
        qty = int(item.get("qty", 1))
        if not 1 <= qty <= MAX_QTY:
            log.warning("refused quantity %d for %s", qty, user)
            return JSONResponse({"error": f"qty must be 1..{MAX_QTY}"}, status_code=400)
        # The store blocks (up to its busy timeout): off the event loop, as sync routes run.
        return await run_in_threadpool(store_item, user, item, qty)

    def clear_cart(request: Request) -> Response:
        user = request.path_params["user"]
        try:
            with store.connect() as db:
                db.execute("DELETE FROM cart_items WHERE user = ?", (user,))
        except sqlite3.Error as error:
            return unavailable(error, user)
        log.info("cleared the cart of %s", user)
        return Response(status_code=204)

    return [
        Route("/carts/{user}", get_cart, methods=["GET"]),
        Route("/carts/{user}", clear_cart, methods=["DELETE"]),
        Route("/carts/{user}/items", add_item, methods=["POST"]),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the cart service."""
    flags = parse_flags(
        "demo cart service", argv, [("--db", {"type": Path, "required": True, "help": "SQLite"})]
    )
    configure_logging("cart")
    state = FaultState.from_env()
    state.start()
    store = CartStore(flags.db)
    log.info("cart store at %s", flags.db)
    app = build_app(make_routes(store), state=state, error_message="cart request failed")
    serve(app, port=flags.port, log=log)


if __name__ == "__main__":
    main(sys.argv[1:])
