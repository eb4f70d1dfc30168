"""The consumer process (``lectr consumer``), ``lectr replay`` and ``lectr dead``.

A consumer reads request events from the ingest queue and stores them, through a chain
of small steps built in :mod:`consumers.chain`::

    decode → tokenise (threads) → price → batch → insert (+ rollups)
           → commit (replay, dead letters, ack)

Nothing is acked before its rows are committed; inserts are idempotent on the event id,
so redelivery and replay never double-count. An event that cannot be stored is
dead-lettered alone, sanitised (:mod:`consumers.dead`), never with its message's other
events. Prompt and completion text is dropped by the tokenise step (or when an event is
dead-lettered) and never reaches Postgres, the replay stream, the dead-letter queue or
a log.
"""
