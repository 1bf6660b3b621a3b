"""The forum's signal types live in the typed contract (agent_packages/forum_contract/signals.py) so agent
packages and realtime/ decode the same Structs the services emit; re-exported here for the backend."""

from agent_packages.forum_contract.signals import *  # noqa: F403
