"""The seed's consumer.py, stopping after one message: URL EXCHANGE QUEUE ROUTING_KEY.

Prints the body and the message's content type and delivery mode as Kombu saw them."""
import json
import sys

from kombu import Connection, Consumer, Exchange, Queue

url, exchange_name, queue_name, routing_key = sys.argv[1:5]
received = []


def process_message(body, message):
    received.append(body)
    print(json.dumps({"body": body, "content_type": message.content_type,
                      "delivery_mode": message.properties.get("delivery_mode")}), flush=True)
    message.ack()


with Connection(url) as conn:
    test_exchange = Exchange(exchange_name, type="direct")
    queue = Queue(name=queue_name, exchange=test_exchange, routing_key=routing_key)
    with Consumer(conn, queues=queue, callbacks=[process_message], accept=["text/plain"]):
        while not received:
            conn.drain_events(timeout=15)
