"""Check types: one module per type, each named in `probe.plugins.CHECK_TYPES`."""
