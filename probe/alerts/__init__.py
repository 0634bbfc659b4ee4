"""Alerting: threshold alerts to Slack and Alertmanager, grouped, retried, surviving restarts."""

from probe.alerts.service import AlertService, send_test

__all__ = ["AlertService", "send_test"]
