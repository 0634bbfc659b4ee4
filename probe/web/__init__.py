"""The HTTP surface of the agent: every route, one bearer check, one way to answer.

`routes` lists every path; `health`, `status`, `pings` and `metrics` hold the handlers;
`auth` the one token check; `responses` the headers and error bodies; `server` the
listening socket.
Handlers read narrow, read-only views (`views`: rendered bodies, current states, history
rollups, the ping inbox) and the settings a reload swaps in (`settings`), never the
config or the store as a whole, and they do no I/O. The web may import the engine and
everything under it, never the CLI or the agent; nothing below it imports the web.
"""
