"""Read models built from the ledger, each with its own tables and tracked position."""
