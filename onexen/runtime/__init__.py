"""The service runtime the translator, executor and monitor share.

- `config`: ServiceConfig / ChannelConfig from flags and ONEXEN_* variables.
- `errors`: domain exceptions, the STATUS_FOR table, to_status / from_rpc_error.
- `logging`: structlog, one JSON object per line, secrets redacted.
- `metrics`: Prometheus counters and histogram of calls, per-server registry.
- `interceptor`: request ids, error mapping, one `rpc` log event per call;
  run_blocking and deadline_seconds for handlers.
- `transport`: keepalive, message limits, TLS credentials, open_channel.
- `server`: start_server / started_server / serve / run.
"""
