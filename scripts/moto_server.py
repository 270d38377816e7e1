"""moto_server, with DynamoDB's item operations made atomic.

moto's server handles requests on threads and applies a conditional write as check-then-write
without a lock, so two concurrent writers can both pass `attribute_not_exists`: something real
DynamoDB never allows, and our uniqueness guarantees (usernames, webhook ids, endpoints) rest
on it. Serialising the backend's item operations restores DynamoDB's semantics; SQS long polls
keep their threads. Arguments are moto_server's.
"""
import functools
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_lock = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main()
