"""Instant triggers: flows subscribe to an event (``message.received`` of one InstaMsg client,
``client.created`` of a tenant, ``file.created`` of a client), and the connector watches
InstaMsg for them and pushes each new item to every subscriber, signed per Standard Webhooks,
retried, once per item and subscription.

- ``kinds``: the events' table (block, filter, cursor, data), which every other part reads;
- ``subscriptions``: the REST Hooks records (create, list, show, remove), as every face uses them;
- ``targets``: where a delivery may go (uploadFile's address rules, with this face's allowances);
- ``deliveries``: one delivery's body, signature, send and outcome, over its durable record;
- ``watcher``: the one poll per watched client, the durable cursors and the fleet-wide lease.

What is kept lives in the state store (connector/state/event_store.py).
"""
