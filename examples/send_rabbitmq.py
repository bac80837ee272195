"""A trading service placing one order over RabbitMQ: nothing of ordersync imported.

    python examples/send_rabbitmq.py amqp://user:password@rabbitmq:5672/ordersync \\
        --account demo --symbol AAPL --side buy --quantity 10 --decision-id sig-0001 \\
        --expires-at 2026-11-21T14:30:05+00:00

Three things make a send on RabbitMQ mean something:

- ``confirm_publish``: ``send_task`` returns only once RabbitMQ has confirmed the message,
  that is, stored it in ordersync's replicated quorum queue ``celery``;
- ``Queue("celery", no_declare=True)``: ordersync declares its queues (quorum queues with a
  delivery limit and a dead-letter queue); Celery would declare ``celery`` as a classic
  queue, which RabbitMQ refuses (406 PRECONDITION_FAILED, inequivalent arguments);
- ``mandatory=True``: a message no queue takes (ordersync's queues not declared on this
  vhost yet) comes back as an error (312 NO_ROUTE) instead of being confirmed and dropped.

The call is idempotent: ordersync derives the order's client order id from the account and
the decision id, and this script derives the task id from the same two, so sending again
after an error, whose outcome is unknown, never makes a second order. Give the deadline
(``--expires-at``) computed once, when the signal fired, and resend it unchanged. Exit
status 0: RabbitMQ confirmed the message, the task id is printed. Exit status 1: not
confirmed, the reason on stderr; send again with the same arguments.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation

from celery import Celery
from kombu.entity import Queue

CONFIRM_TIMEOUT_S = 10.0
NO_ROUTE = 312


def task_id_for(account: str, decision_id: str) -> str:
    """One decision always travels under one task id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ordersync:place_order:{account}:{decision_id}"))


def sender(broker_url: str) -> Celery:
    """A trading service's app: confirmed publishes to ordersync's queue, never declared."""
    app = Celery("trading-service", broker=broker_url)
    app.conf.broker_transport_options = {"confirm_publish": True}
    app.conf.task_queues = [Queue("celery", no_declare=True)]  # type: ignore[no-untyped-call]
    return app


def failure(error: Exception, task_id: str) -> str:
    """What an error means for the order, and what to do."""
    resend = f"sending again with the same decision id (task {task_id}) is safe"
    if getattr(error, "reply_code", None) == NO_ROUTE:
        return (
            "not stored: RabbitMQ returned the message, no queue takes it (312 NO_ROUTE): "
            "ordersync's queues are not declared on this vhost (a worker declares them as it "
            f"starts); {resend} once they are"
        )
    return (
        f"not confirmed ({type(error).__name__}: {error}): the message may or may not be "
        f"stored; {resend}: it never makes a second order"
    )


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
    parser.add_argument("broker_url", help="amqp://user:password@host:5672/vhost")
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
        # mandatory: a message no queue takes is an error, not a confirm of nothing.
        sender(args.broker_url).send_task("ordersync.place_order", kwargs=kwargs,
                                          task_id=task_id, mandatory=True,
                                          confirm_timeout=CONFIRM_TIMEOUT_S)  # fmt: skip
    except Exception as error:
        print(failure(error, task_id), file=sys.stderr)
        return 1
    print(task_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
