"""The seed's producer.py, with names from argv so tests stay isolated: URL EXCHANGE ROUTING_KEY BODY."""
import sys

from kombu import Connection, Exchange, Producer

url, exchange_name, routing_key, body = sys.argv[1:5]
with Connection(url) as conn:
    channel = conn.channel()
    test_exchange = Exchange(exchange_name, type="direct")
    producer = Producer(exchange=test_exchange, channel=channel, routing_key=routing_key)
    producer.publish(body)
