"""Alerts: the engine (state machine), delivery, and the notifiers named in `probe.plugins.NOTIFIER_TYPES`."""
