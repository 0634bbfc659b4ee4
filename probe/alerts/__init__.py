"""Alerts: the engine (state machine), delivery, and the notifiers of `probe.plugins`."""
