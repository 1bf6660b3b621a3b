"""The typed forum contract: signal payloads, directive payloads and read queries as msgspec Structs.

Agent packages and realtime/ import this (it depends on engine/ only, never on backend/); backend services
emit these Structs and backend domains serve these reads and apply these directives."""
