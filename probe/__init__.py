"""probe: a health-probe sidecar agent, in layers that read from the bottom up.

`core/` holds the values and words everyone uses; `contract/` what a plugin is, the
registries and the config file's shape; `checks/` and `notifiers/` the plugins; `engine/`
what runs the checks, keeps their results and judges them (alerts, history, metrics);
`web/`, `cli/` and `agent.py` are the faces on top. A module may import its own layer and
those below it, never one above (`tests/test_architecture.py` holds the order).
"""

__version__ = "0.1.0"
