"""The consumer process (``lectr consumer``) and ``lectr replay``.

A consumer reads request events from the ingest queue and stores them, through a chain
of small steps built in :mod:`consumers.chain`::

    decode → tokenise (threads) → price → batch → insert (+ rollups) → commit (replay, ack)

Nothing is acked before its rows are committed; inserts are idempotent on the event id,
so redelivery and replay never double-count. Prompt and completion text is dropped by
the tokenise step and never reaches Postgres, the replay stream or a log.
"""
