"""Kombu's compression, both ways: `send URL QUEUE METHOD BODY` publishes BODY compressed into
QUEUE (through the default exchange); `zeros URL QUEUE METHOD N` publishes N zero bytes so
compressed (a small message that decompresses to much); `get URL QUEUE` takes one message and prints it decoded
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
    elif action == "zeros":
        method, size = sys.argv[4], int(sys.argv[5])
        conn.Producer().publish(b"\0" * size, exchange="", routing_key=queue, compression=method,
                                content_type="application/data", content_encoding="binary")
    else:
        channel = conn.default_channel
        message = channel.message_to_python(channel.basic_get(queue, no_ack=True))
        body = message.decode()  # raises DecodeError where the label does not fit the body
        if isinstance(body, bytes):
            body = {"bytes": base64.b64encode(body).decode()}
        print(json.dumps({"body": body, "compression": message.headers.get("compression")}))
