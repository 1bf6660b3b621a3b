"""forum_summary_agent (spec §12.2): a TL;DR of long threads, on request or every N replies."""

from agent_packages.forum_summary_agent.agent import SummaryAgent

package = SummaryAgent()

__all__ = ["SummaryAgent", "package"]
