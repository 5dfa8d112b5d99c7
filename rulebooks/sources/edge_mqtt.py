"""An ansible-rulebook event source: handover events from an MQTT broker (e.g. Debian's
mosquitto). Each message on the topic is a JSON object; it is put in the queue as the
webhook source does, under `payload`, with the topic in `meta`, so that one rulebook serves
both sources."""

import asyncio
import json
import logging

import aiomqtt

DOCUMENTATION = r"""
---
short_description: Receive handover events from an MQTT broker.
options:
  host:
    description: The broker's address.
    type: str
    default: 127.0.0.1
  port:
    description: The broker's port.
    type: int
    default: 1883
  topic:
    description: The topic to subscribe to (MQTT wildcards allowed).
    type: str
    default: edge-migrate/handover
  max_bytes:
    description: Larger messages are dropped.
    type: int
    default: 4096
"""

LOGGER = logging.getLogger(__name__)
RECONNECT_SECONDS = 2


async def main(queue, args):
    host = args.get("host", "127.0.0.1")
    port = int(args.get("port", 1883))
    topic = args.get("topic", "edge-migrate/handover")
    max_bytes = int(args.get("max_bytes", 4096))
    while True:
        try:
            async with aiomqtt.Client(host, port) as client:
                await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    body = bytes(message.payload or b"")
                    if len(body) > max_bytes:
                        LOGGER.warning("dropped a %d-byte message on %s", len(body), message.topic)
                        continue
                    try:
                        payload = json.loads(body)
                    except ValueError as exc:
                        LOGGER.warning("dropped a message that is not JSON on %s: %s", message.topic, exc)
                        continue
                    if isinstance(payload, dict):
                        await queue.put({"payload": payload, "meta": {"topic": str(message.topic)}})
        except aiomqtt.MqttError as exc:
            LOGGER.warning("MQTT broker %s:%d: %s; reconnecting", host, port, exc)
            await asyncio.sleep(RECONNECT_SECONDS)


if __name__ == "__main__":
    class _Printer:
        async def put(self, event):
            print(event, flush=True)

    asyncio.run(main(_Printer(), {}))
