"""The HTTP API and the command line of the release ledger."""
