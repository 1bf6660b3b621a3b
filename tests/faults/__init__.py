"""Fault tests: real processes killed or cut off, each asserting on the database and on what websocket
clients received."""
