"""Agent runtime: packages and installations, directives, the signal router, the directive runner."""
