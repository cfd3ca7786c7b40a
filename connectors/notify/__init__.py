"""The notifier (`sense-respond notify`): pushes incident lifecycle events to on-call staff.

- `events`: the lifecycle CloudEvent as read from `{prefix}alerts`, and destination filters.
- `payloads`: PagerDuty Events API v2, Slack Block Kit and Standard Webhooks bodies (pure).
- `policy`: retry classification, Retry-After, backoff budget and the token bucket (pure).
- `sender`: one HTTP request per attempt through httpx (timeouts, capped reads, no redirects).
- `store`: the notifier's Redis keys: delivered markers, dead letters, acks, the pending list.
- `worker`: one thread per destination (its queue, order per incident, retries).
- `service`: the long-running process: consumer group, reclaim, acks, shutdown, metrics.
"""
