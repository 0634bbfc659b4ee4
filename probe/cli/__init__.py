"""The command line: `probe run|check|validate|ping|history|alert-test`.

`main` parses arguments, picks exit codes and dispatches; `oneshot` is `probe check`,
`output` how check and validate print; `ping` is `probe ping` (standard library and
`probe.core` only, for the image's HEALTHCHECK); `history` is `probe history`;
`maintenance` is `probe maintenance start|end` against a running agent. The CLI
may import everything below it and the agent (`probe run`); nothing imports the CLI.
"""
