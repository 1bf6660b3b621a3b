"""forum_routing_agent (spec §12.2): finds likely experts for unanswered or escalated questions."""

from agent_packages.forum_routing_agent.agent import RoutingAgent

package = RoutingAgent()

__all__ = ["RoutingAgent", "package"]
