"""Webhooks: maintainers subscribe URLs to MDS's events (``core.events``); each event is delivered signed, retried
with backoff, and logged.

``models`` (subscriptions, and deliveries: the outbox), ``services`` (recording deliveries in the emitter's
transaction, subscriptions), ``sending`` (the signed POST, retries, the sweeper and embedded mode's sender
thread), ``signing`` (pure Python: a receiver may copy it), ``apis`` and ``admin``. This package's ``__init__``
imports nothing, so that ``signing`` can be imported without Django.
"""
