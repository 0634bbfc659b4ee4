"""probe: a health-probe sidecar agent."""

__version__ = "0.1.0"
