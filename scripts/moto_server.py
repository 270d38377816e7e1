"""moto_server, with DynamoDB's item operations made atomic, and a cheap SES outbox.

moto's server handles requests on threads and applies a conditional write as check-then-write
without a lock, so two concurrent writers can both pass `attribute_not_exists`: something real
DynamoDB never allows, and our uniqueness guarantees (usernames, webhook ids, endpoints) rest
on it. Serialising the backend's item operations restores DynamoDB's semantics; SQS long polls
keep their threads.

`GET /moto-api/ses/outbox.json` lists the emails SES sent (source, destinations, subject, body):
what `/moto-api/data.json` holds under `ses` -> `Message`, without serialising every other model
of the emulator, which takes a minute once the tests have filled the table and queues.
Arguments are moto_server's.
"""
import functools
import json
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_api._internal import urls as moto_api_urls
from moto.server import main
from moto.ses.models import Message, ses_backends

_lock = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))



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
