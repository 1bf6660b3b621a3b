"""forum_welcome_agent (spec §12.2): greets a user's first post in an org, once, and asks for missing
context when the post is very short."""

from agent_packages.forum_welcome_agent.agent import WelcomeAgent

package = WelcomeAgent()

__all__ = ["WelcomeAgent", "package"]
