"""moto_server, with DynamoDB's item operations made atomic, AWS's limits where moto is looser,
a cheap SES outbox, and three of its costs that grew with the tests' load taken out (see
"throughput" below).

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

With DYNAMO_ACCESS_LOG set to a file, each DynamoDB item operation is recorded there with the
function that made it and the partition keys it touched (see below).

Arguments are moto_server's.
"""
import copy
import functools
import json
import logging
import os
import re
import threading

from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.responses import DynamoHandler
from moto.moto_api._internal import urls as moto_api_urls
from moto.server import main
from moto.ses.models import Message, ses_backends
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import SQSBackend
from moto import backends as moto_backends
from moto.core.utils import unix_time, unix_time_millis

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


# moto rolls a failed TransactWriteItems back from a deep copy of each table it names, made
# before it starts, once per item: on a table the tests have filled, one transaction took
# seconds, past the SDK's timeouts (webhook writes answered 500 under schemathesis). The same
# all-or-nothing from a copy of only the items the transaction names: moto's DynamoDB models
# get a `copy` module that leaves tables alone, and a failed transaction puts its items back.
class _CopyButTables:
    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, *args, **kwargs):
        return value if isinstance(value, Table) else copy.deepcopy(value, *args, **kwargs)


dynamodb_models.copy = _CopyButTables()
_transact_write_items_backend = DynamoDBBackend.transact_write_items


def _transact_write_items_undoable(self, transact_items):
    saved = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        table = self.tables.get(op.get("TableName"))
        attrs = op.get("Key") or op.get("Item") or {}
        if table is None or table.hash_key_attr not in attrs:
            continue
        hash_key = DynamoType(attrs[table.hash_key_attr])
        range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr in attrs else None
        if table.range_key_attr and range_key is None:
            continue
        current = table.items[hash_key].get(range_key) if range_key else table.items.get(hash_key)
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    try:
        return _transact_write_items_backend(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            place = table.items[hash_key] if range_key else table.items
            key = range_key if range_key else hash_key
            if item is None:
                place.pop(key, None)
            else:
                place[key] = item
        raise


DynamoDBBackend.transact_write_items = _serialised(_transact_write_items_undoable)


# --- DynamoDB: who reads and writes which partitions ---------------------------------------
# With DYNAMO_ACCESS_LOG set, every item operation appends a JSON line: the calling function
# (the `app/<name>` of its SDK user agent), the operation and the partition keys it touched.
# scripts/test.sh checks them against each function's `dynamodb:LeadingKeys` in template.yaml.
_ACCESS_LOG = os.environ.get("DYNAMO_ACCESS_LOG")
_access_lock = threading.Lock()


def _pk(key):
    value = (key or {}).get("pk") or {}
    return value.get("S")


def _query_pk(body):
    # The table's partition key is `pk`; an index's is the attribute of its key condition's
    # equality (IAM's dynamodb:LeadingKeys is the index's partition key for a query on an index).
    names = {v: k for k, v in (body.get("ExpressionAttributeNames") or {}).items()}
    expression = body.get("KeyConditionExpression") or ""
    for name, placeholder in re.findall(r"([#\w]+)\s*=\s*(:\w+)", expression):
        if name == "pk" or names.get("pk") == name or body.get("IndexName"):
            return _pk({"pk": (body.get("ExpressionAttributeValues") or {}).get(placeholder)})
    return None


def _leading_keys(operation, body):
    if operation in ("get_item", "delete_item", "update_item"):
        return [_pk(body.get("Key"))]
    if operation == "put_item":
        return [_pk(body.get("Item"))]
    if operation == "query":
        return [_query_pk(body)]
    if operation in ("transact_write_items", "transact_get_items"):
        keys = []
        for entry in body.get("TransactItems", []):
            op = next(iter(entry.values()))
            keys.append(_pk(op.get("Item") or op.get("Key")))
        return keys
    if operation == "batch_get_item":
        return [_pk(k) for table in (body.get("RequestItems") or {}).values() for k in table.get("Keys", [])]
    if operation == "batch_write_item":
        return [
            _pk((r.get("PutRequest") or {}).get("Item") or (r.get("DeleteRequest") or {}).get("Key"))
            for requests in (body.get("RequestItems") or {}).values()
            for r in requests
        ]
    return []


def _recorded(operation, method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        agent = self.headers.get("x-amz-user-agent") or self.headers.get("User-Agent") or ""
        app = re.search(r"(?:^|\s)app/(\S+)", agent)
        line = json.dumps({"app": app.group(1) if app else None, "op": operation,
                           "keys": _leading_keys(operation, self.body or {})})
        with _access_lock:
            _access_file.write(line + "\n")
        return method(self, *args, **kwargs)

    return wrapper


if _ACCESS_LOG:
    # Open once, a line at a time: opening the file for each operation cost the emulator a
    # tenth of its time under the tests' load.
    _access_file = open(_ACCESS_LOG, "a", buffering=1)
    for _op in ("get_item", "put_item", "update_item", "delete_item", "query", "scan",
                "transact_write_items", "transact_get_items", "batch_get_item", "batch_write_item"):
        setattr(DynamoHandler, _op, _recorded(_op, getattr(DynamoHandler, _op)))


# --- throughput ------------------------------------------------------------------------------
# moto_server is one Python process, and the local stack's every AWS call goes through it. Three
# of its costs grow with no benefit to the emulation, and under the tests' load (a dead
# receiver's deliveries waiting in the slow lane beside a healthy vendor's stream) they saturated
# its core, slowing every call by three to five times, where AWS would not slow down at all.

# For each request moto lists its own package directory to tell a service by host name.
_moto_modules = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _moto_modules


# A received message's retention check read every attribute of its queue, three of them
# counting the queue's messages: a scan of the queue for each message handed out.
def _within_retention(self, queue_name, message):
    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _within_retention


# A query of the table (not of an index) read and sorted every item of the table to keep one
# partition's: a cost that grew with all the tests had written. It reads that partition only.
_querying = threading.local()
_table_query = Table.query
_all_items = Table.all_items


def _query_partition(self, hash_key, *args, **kwargs):
    # Table.query's eighth parameter, after hash_key and six more; DynamoDBBackend passes it
    # by position.
    on_index = args[6] if len(args) > 6 else kwargs.get("index_name")
    _querying.partition = None if on_index or not self.range_key_attr else hash_key
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        _querying.partition = None


def _items_for_query(self):
    partition = getattr(_querying, "partition", None)
    if partition is None:
        return _all_items(self)
    # Unsorted: the query sorts what it keeps by range key.
    return list(self.items.get(partition, {}).values())


Table.query = _query_partition
Table.all_items = _items_for_query

# A line in the log for every request ("POST / HTTP/1.1" 200), a tenth of the emulator's time;
# warnings and errors are still logged.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


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
