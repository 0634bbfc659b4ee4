"""Plugins: the check types, one module per type, each named in `CHECK_TYPES`.

Besides the types, the helpers they share: failure words (`errors`), the deep measures'
defaults (`deep`), a Redis client (`redis_client`), cgroup files (`cgroup`), PromQL-ish
selectors (`promql`), BullMQ's events (`bullmq_events`, `bullmq_outcomes`) and the http
check's parts (`http_expect`, `http_phases`, `tls_chain`). A check module may import
`probe.core`, `probe.contract` and these helpers; never a notifier, the engine or a face.
"""
