"""moto_server, with DynamoDB's item operations made atomic, AWS's limits where moto is looser,
and a cheap SES outbox.

moto's server handles requests on threads and applies a conditional write as check-then-write
without a lock, so two concurrent writers can both pass `attribute_not_exists`: something real
DynamoDB never allows, and our uniqueness guarantees (usernames, webhook ids, endpoints) rest
on it. Serialising the backend's item operations restores DynamoDB's semantics; SQS long polls
keep their threads.

`GET /moto-api/ses/outbox.json` lists the emails SES sent (source, destinations, subject, body):
what `/moto-api/data.json` holds under `ses` -> `Message`, without serialising every other model
of the emulator, which takes a minute once the tests have filled the table and queues.

AWS's limits, where our code can reach them and moto (5.2) does not hold them as AWS does; the
tests in tests/tests/emulator.rs show each one refused with AWS's own error code, so that a moto
upgrade that loosens one is caught:
- SQS counts a message's size in bytes of UTF-8 (moto counts characters), for a message against
  its queue's MaximumMessageSize and for a batch against 1 MiB.
- ChangeMessageVisibility may hide a message up to 12 hours from the receive whose handle it
  carries (moto counts from the message's first send, which refuses legal calls).
- SendMessageBatch keeps each entry's MessageSystemAttributes (the AWSTraceHeader that links
  X-Ray traces across the queue), as SendMessage does (moto drops them from batches).
- BatchWriteItem takes at most 25 requests; TransactWriteItems at most 4 MB of items (moto
  checks neither).

Arguments are moto_server's.
"""
import functools
import json
import threading

from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.responses import DynamoHandler
from moto.moto_api._internal import urls as moto_api_urls
from moto.server import main
from moto.ses.models import Message, ses_backends
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import SQSBackend
from moto.core.utils import unix_time_millis

_lock = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))


# --- SQS --------------------------------------------------------------------------------------

SQS_BATCH_BYTES = 1_048_576
SQS_MAX_VISIBILITY_MS = 43_200 * 1000


def _utf8_len(text):
    return len(text.encode("utf-8"))


_validate_message = SQSBackend._validate_message


def _validate_message_bytes(self, queue, message_body, *args, **kwargs):
    size = _utf8_len(message_body)
    if size > int(queue.maximum_message_size):
        raise InvalidParameterValue(
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{queue.maximum_message_size} bytes."
        )
    return _validate_message(self, queue, message_body, *args, **kwargs)


SQSBackend._validate_message = _validate_message_bytes

_send_message_batch = SQSBackend.send_message_batch


def _send_message_batch_bytes(self, queue_name, entries):
    size = sum(_utf8_len(entry["MessageBody"]) for entry in entries.values())
    if size > SQS_BATCH_BYTES:
        raise BatchRequestTooLong(size)
    messages, failed = _send_message_batch(self, queue_name, entries)
    # An entry's MessageSystemAttributes (AWSTraceHeader), which moto keeps for SendMessage only.
    by_id = {entry["Id"]: entry for entry in entries.values()}
    for message in messages:
        system = by_id.get(getattr(message, "user_id", None), {}).get("MessageSystemAttributes")
        if system:
            message.system_attributes = system
    return messages, failed


SQSBackend.send_message_batch = _send_message_batch_bytes

# When each receipt handle was handed out, for ChangeMessageVisibility's 12 hours.
_received_at = {}
_mark_received = sqs_models.Message.mark_received


def _mark_received_at(self, *args, **kwargs):
    _mark_received(self, *args, **kwargs)
    _received_at[self.receipt_handle] = unix_time_millis()


sqs_models.Message.mark_received = _mark_received_at


def _change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
    queue = self.get_queue(queue_name)
    for message in queue._messages:
        if message.had_receipt_handle(receipt_handle):
            now = unix_time_millis()
            received = _received_at.get(receipt_handle, now)
            if now + int(visibility_timeout) * 1000 - received > SQS_MAX_VISIBILITY_MS:
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: "
                    "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"
                )
            message.change_visibility(visibility_timeout)
            if message.visible and message in queue.pending_messages:
                queue.pending_messages.remove(message)
            return
    raise ReceiptHandleIsInvalid


SQSBackend.change_message_visibility = _change_message_visibility

# --- DynamoDB ---------------------------------------------------------------------------------

DYNAMODB_BATCH_WRITE_MAX = 25
DYNAMODB_TRANSACTION_BYTES = 4 * 1024 * 1024

_batch_write_item = DynamoHandler.batch_write_item


def _batch_write_item_limited(self):
    requests = sum(len(r) for r in self.body.get("RequestItems", {}).values())
    if requests > DYNAMODB_BATCH_WRITE_MAX:
        raise MockValidationException(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: "
            "Map value must satisfy constraint: [Member must have length less than or equal to 25, "
            "Member must have length greater than or equal to 1]"
        )
    return _batch_write_item(self)


DynamoHandler.batch_write_item = _batch_write_item_limited


def _item_bytes(attributes):
    return sum(len(name.encode("utf-8")) + DynamoType(value).size() for name, value in attributes.items())


_transact_write_items = DynamoHandler.transact_write_items


def _transact_write_items_limited(self):
    size = 0
    for entry in self.body.get("TransactItems", []):
        op = next(iter(entry.values()))
        size += _item_bytes(op.get("Item") or op.get("Key") or {})
        size += _item_bytes(op.get("ExpressionAttributeValues") or {})
    if size > DYNAMODB_TRANSACTION_BYTES:
        raise MockValidationException("Transaction request cannot be larger than 4 MB")
    return _transact_write_items(self)


DynamoHandler.transact_write_items = _transact_write_items_limited


def _outbox(request, full_url, headers):
    sent = []
    for account_id in list(ses_backends.keys()):
        regions = ses_backends[account_id]
        for region in list(regions.keys()):
            for m in list(regions[region].sent_messages):
                if isinstance(m, Message):
                    sent.append(
                        {
                            "id": m.id,
                            "region": region,
                            "source": m.source,
                            "destinations": m.destinations,
                            "subject": m.subject,
                            "body": m.body,
                        }
                    )
    return 200, {"Content-Type": "application/json"}, json.dumps(sent)


moto_api_urls.url_paths["{0}/moto-api/ses/outbox.json"] = _outbox

if __name__ == "__main__":
    main()
