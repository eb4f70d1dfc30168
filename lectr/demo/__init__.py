"""``lectr demo``: a demo organisation with realistic history and live traffic.

Modules: :mod:`~lectr.demo.command` (the command and its steps), :mod:`~lectr.demo.org`
(the org, its key, its removal), :mod:`~lectr.demo.catalogue` (what its traffic is made
of), :mod:`~lectr.demo.history` (the synthetic history), :mod:`~lectr.demo.publish`
(onto the ingest route), :mod:`~lectr.demo.children` (the Lectr processes it runs),
:mod:`~lectr.demo.provider` (the simulated provider) and :mod:`~lectr.demo.live` (live
traffic through the proxy).
"""
