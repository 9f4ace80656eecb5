"""Kombu's compression, both ways: `send URL QUEUE METHOD BODY` publishes BODY compressed into
QUEUE (through the default exchange); `get URL QUEUE` takes one message and prints it decoded
(Kombu undoes the compression named in the header) with its compression header; a body Kombu
hands over as bytes (application/data) comes as {"bytes": base64}."""
import base64
import json
import sys

from kombu import Connection

action, url, queue = sys.argv[1:4]
with Connection(url) as conn:
    if action == "send":
        method, body = sys.argv[4:6]
        producer = conn.Producer()
        producer.publish(body, exchange="", routing_key=queue, compression=method,
                         content_type="text/plain", content_encoding="utf-8", serializer=None)
    else:
        channel = conn.default_channel
        message = channel.message_to_python(channel.basic_get(queue, no_ack=True))
        body = message.decode()  # raises DecodeError where the label does not fit the body
        if isinstance(body, bytes):
            body = {"bytes": base64.b64encode(body).decode()}
        print(json.dumps({"body": body, "compression": message.headers.get("compression")}))
