"""The AWS targets of replay: `sqs:QUEUE`, `eventbridge:BUS`, `kinesis:STREAM`,
`lambda:FUNCTION` (`target` builds one from its name; resolve.py calls it).

- `entries`      what they share: an event as a request entry, size limits, cutting a batch
                 into calls, resending refused entries (backoff.deliver), EntryTarget
- `sqs`, `eventbridge`, `kinesis`, `lambda_`   one target each

Each checks at `start` that its queue, bus, stream or function exists (TargetError naming
it), refuses an event above its per-entry limit before sending anything of the batch
(DeliveryError naming it and the limit), sends calls one after another, and resends what AWS
refused per entry with full-jitter backoff until delivered or DeliveryError (at once for an
entry the service refuses for good: SQS's SenderFault, EventBridge's non-retryable codes).
Whole-call transient errors are retried by botocore (eventlake.aws). Every message carries the
event's event_id: delivery is at least once around a crash, and event_id is the consumer's key.
"""

from __future__ import annotations

from eventlake.aws import Clients
from eventlake.replay.aws.entries import EntryTarget
from eventlake.replay.backoff import Backoff
from eventlake.replay.targets import TargetError


def target(kind: str, name: str, clients: Clients, backoff: Backoff | None = None
           ) -> EntryTarget:
    """The `kind:name` target (kind one of sqs, eventbridge, kinesis, lambda)."""
    if kind == "sqs":
        from eventlake.replay.aws.sqs import SqsTarget

        return SqsTarget(name, clients, backoff)
    if kind == "eventbridge":
        from eventlake.replay.aws.eventbridge import EventBridgeTarget

        return EventBridgeTarget(name, clients, backoff)
    if kind == "kinesis":
        from eventlake.replay.aws.kinesis import KinesisTarget

        return KinesisTarget(name, clients, backoff)
    if kind == "lambda":
        from eventlake.replay.aws.lambda_ import LambdaTarget

        return LambdaTarget(name, clients, backoff)
    raise TargetError(f"unknown AWS target kind `{kind}`: sqs, eventbridge, kinesis or lambda")
