"""Agent packages: each sub-package exposes `package`, an engine.agents.api.AgentPackage."""
