"""forum_moderation_agent (spec §12.2): flags likely spam, toxicity and duplicates for moderators."""

from agent_packages.forum_moderation_agent.agent import ModerationAgent

package = ModerationAgent()

__all__ = ["ModerationAgent", "package"]
