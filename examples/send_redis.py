"""A trading service placing one order over Redis: nothing of ordersync imported.

    python examples/send_redis.py redis://redis:6379/0 \\
        --account demo --symbol AAPL --side buy --quantity 10 --decision-id sig-0001 \\
        --expires-at 2026-11-21T14:30:05+00:00

On Redis a plain Celery app sends the right way: ``send_task`` returns once Redis has taken
the message into the list ``celery``. Redis has no publisher confirms: the message is in
Redis's memory, and survives a restart of Redis as far as Redis persists its data (with
``appendonly yes`` and the default ``appendfsync everysec``, all but the last second).

The call is idempotent: ordersync derives the order's client order id from the account and
the decision id, and this script derives the task id from the same two, so sending again
after an error, whose outcome is unknown, never makes a second order. Give the deadline
(``--expires-at``) computed once, when the signal fired, and resend it unchanged. Exit
status 0: Redis took the message, the task id is printed. Exit status 1: the send failed
(the message may be stored or not), the reason on stderr; send again with the same
arguments.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation

from celery import Celery


def task_id_for(account: str, decision_id: str) -> str:
    """One decision always travels under one task id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ordersync:place_order:{account}:{decision_id}"))


def checked(args: argparse.Namespace) -> str | None:
    """What is wrong with the order's arguments, before anything is sent."""
    try:
        if not Decimal(args.quantity) > 0:
            return f"--quantity {args.quantity} is not positive"
    except InvalidOperation:
        return f"--quantity {args.quantity!r} is not a decimal"
    try:
        if args.expires_at and datetime.fromisoformat(args.expires_at).tzinfo is None:
            return f"--expires-at {args.expires_at} has no UTC offset"
    except ValueError:
        return f"--expires-at {args.expires_at!r} is not an ISO 8601 time"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Place one order through ordersync.")
    parser.add_argument("broker_url", help="redis://host:6379/0: ordersync's Redis")
    for required in ("--account", "--symbol", "--quantity", "--decision-id"):
        parser.add_argument(required, required=True)
    parser.add_argument("--side", choices=["buy", "sell"], default="buy")
    parser.add_argument("--expires-at", help="placement deadline, ISO 8601 with its offset")
    args = parser.parse_args(argv)
    if problem := checked(args):
        parser.error(problem)
    kwargs = {"account": args.account, "symbol": args.symbol, "side": args.side,
              "quantity": args.quantity, "decision_id": args.decision_id}  # fmt: skip
    if args.expires_at:
        kwargs["expires_at"] = args.expires_at
    task_id = task_id_for(args.account, args.decision_id)
    try:
        app = Celery("trading-service", broker=args.broker_url)
        app.send_task("ordersync.place_order", kwargs=kwargs, task_id=task_id)
    except Exception as error:
        print(f"send failed ({type(error).__name__}: {error}): the message may or may not be "
              f"stored; sending again with the same decision id (task {task_id}) is safe: "
              "it never makes a second order", file=sys.stderr)  # fmt: skip
        return 1
    print(task_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
