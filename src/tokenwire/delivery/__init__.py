"""Where records go: the ledger (and, later, Lago and OpenTelemetry)."""
