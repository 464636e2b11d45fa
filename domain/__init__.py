"""Event-sourced aggregates of the release ledger and the application that records them."""
