"""forum_faq_agent (spec §12.2): answers new questions from the org's own history, with citations, or
escalates to humans when it is not confident."""

from agent_packages.forum_faq_agent.agent import FaqAgent, FaqConfig

package = FaqAgent()

__all__ = ["FaqAgent", "FaqConfig", "package"]
