"""Platform primitives: tenancy, database, signals, streams. Knows nothing about forums."""
