"""Real time: the websocket protocol, the per-node fan-out hub, partition readers, resume and drafts.

Imports `engine` only. Authorization and the mapping of signals to channels are injected by the
composition root (`backend`), so this package knows nothing about forums.
"""
