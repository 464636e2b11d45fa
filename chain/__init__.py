"""The hash chain that makes changes to the recorded ledger detectable."""
