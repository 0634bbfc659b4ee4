"""Ground: the values and words every layer uses, and nothing else.

Clocks and moments (`times`), units, limits and durations in words (`units`), check
results and statuses (`model`), the config models' value types (`fields`), network errors
in words (`networds`), secrets kept out of output (`redact`), log lines (`logs`), stopping
background tasks (`tasks`), `depends_on` (`dependencies`), state files read back hardened
(`statefile`), maintenance windows (`maintenance`) and incident notes (`incident_notes`).
These modules may import the standard library, pydantic and each other, and nothing else
of probe.
"""
