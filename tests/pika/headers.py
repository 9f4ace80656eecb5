"""pika, a client nobody here wrote, on both ends of a kmq dump and replay.

  headers.py publish URL QUEUE...  publishes one message whose headers hold every type pika
                                  writes, to each queue
  headers.py read URL QUEUE        prints that message's headers, body and properties, typed

A test publishes to two queues, sends one through `kmq consume -o json` and
`kmq produce --jsonl`, and compares what pika reads from each."""
import datetime
import decimal
import json
import sys

import pika

url, queues = sys.argv[2], sys.argv[3:]
HEADERS = {
    "str": "héllo",
    "int32": -7,
    "int64_big": 2**40,
    "int_2p31": 2**31 + 5,          # 4.1.1 of amqp-client wraps these to negative 32-bit
    "int_beyond_json": 2**53 + 1,   # not a safe JavaScript integer
    "decimal": decimal.Decimal("12.345"),
    "timestamp": datetime.datetime(2024, 5, 6, 7, 8, 9),
    "bytes": b"\x00\xff\x10",
    "true": True,
    "none": None,
    "table": {"nested": [1, "two", {"deep": 2**33}]},
    "array": [1, "x", None, False, b"\x01"],  # pika 1.2 cannot write floats: kmq's tests cover them
    # names an object keyed by untrusted text mishandles (__proto__ would set its prototype)
    "__proto__": "proto",
    "constructor": {"toString": 1, "hasOwnProperty": [2], "__proto__": {"valueOf": 3}},
    "toString": "s",
    "hasOwnProperty": True,
}
BODY = bytes(range(256))


def describe(value):
    """A JSON description that keeps the Python type of every value."""
    if isinstance(value, dict):
        return {k: describe(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, (datetime.datetime, decimal.Decimal)):
        return [type(value).__name__, str(value)]
    return [type(value).__name__, repr(value)]


conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
if sys.argv[1] == "publish":
    ch.confirm_delivery()
    props = pika.BasicProperties(headers=HEADERS, content_type="application/octet-stream", delivery_mode=2,
                                 priority=0, message_id="m-1", timestamp=2**64 - 1)  # unsigned 64-bit
    for queue in queues:
        ch.queue_declare(queue, durable=True)
        ch.basic_publish("", queue, BODY, props)
else:
    method, props, body = ch.basic_get(queues[0], auto_ack=True)
    print(json.dumps({"headers": describe(props.headers), "body": body.hex(), "priority": props.priority,
                      "timestamp": str(props.timestamp), "content_type": props.content_type,
                      "content_encoding": props.content_encoding, "delivery_mode": props.delivery_mode,
                      "message_id": props.message_id}))
conn.close()
