"""Check types: one module per type, listed in `registry.CHECK_TYPES`."""
