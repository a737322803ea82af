"""The payment service: authorises a charge in the one currency it accepts.

Its silent-wrong-result fault approves the charge (200) but leaves out the charge id: checkout
does not check, and only the worker, fulfilling the order later, finds it cannot.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stethoscope.demo.control import FaultState
from stethoscope.demo.services.base import build_app, configure_logging, parse_flags, serve

__all__ = ["main"]

log = logging.getLogger("payment")


def make_routes(state: FaultState, currency: str) -> list[Route]:
    """POST /charges."""

    async def charge(request: Request) -> Response:
        body = await request.json()
        order, amount = body.get("order_id"), int(body.get("amount_cents", 0))
        if body.get("currency") != currency:
            log.warning("declined %s: currency %s is not accepted", order, body.get("currency"))
            return JSONResponse({"error": f"only {currency} is accepted"}, status_code=422)
        if amount <= 0:
            log.warning("declined %s: amount %d is not positive", order, amount)
            return JSONResponse({"error": "amount must be positive"}, status_code=422)
        charge_id = f"ch_{uuid.uuid4().hex[:16]}"
        log.info("charged %d %s for %s", amount, currency, order)
        if state.active("wrong_result") is not None:
            return JSONResponse({"status": "approved", "order_id": order})
        return JSONResponse({"status": "approved", "order_id": order, "charge_id": charge_id})

    return [Route("/charges", charge, methods=["POST"])]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the payment service."""
    flags = parse_flags(
        "demo payment service",
        argv,
        [("--currency", {"default": "USD", "help": "the one currency accepted (USD)"})],
    )
    configure_logging("payment")
    state = FaultState.from_env()
    state.start()
    app = build_app(
        make_routes(state, flags.currency),
        state=state,
        error_message="charge failed: card processor returned an internal error",
    )
    serve(app, port=flags.port, log=log)


if __name__ == "__main__":
    main(sys.argv[1:])
