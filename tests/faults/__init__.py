"""Fault tests: real processes killed or cut off, each asserting on the database and on what websocket
clients received (issue 11). Where each fault is tested:

- web SIGKILLed between commit and XADD: tests/faults/test_web_killed_before_publish.py
- two workers receiving the same directive at once: tests/faults/test_duplicate_directive.py
- Redis restarted empty: tests/faults/test_redis_restarted_empty.py (and, with its data kept,
  tests/test_realtime_nodes.py::test_redis_restart_during_a_session_loses_nothing_committed)
- worker SIGKILLed mid-stream (one agent post, the draft ended): tests/test_agents_worker.py::
  test_worker_killed_mid_execution_posts_once and tests/test_killed_drafts.py::
  test_killed_attempt_draft_is_ended_by_the_retry
- PostgreSQL (and Redis) stopped and restarted under a web node (503s, 1013, recovery with no restart):
  tests/test_outages.py
- a websocket client that stops reading (closed, others unaffected):
  tests/test_realtime_nodes.py::test_slow_consumer_is_closed_while_others_keep_receiving
"""
