"""Notifications out, as Alertmanager's `notify/`: a notification waits in the outbox, is
rendered in its receiver's format and sent through the destination guard, retried until
delivered or given up.

- `outbox`: the delivery loop over the notifications due (claimed with SKIP LOCKED);
- `delivery`: one attempt (retries with backoff, `Retry-After`, idempotency keys);
- `destinations`: where a webhook may go (the SSRF guard) and masking of webhook URLs;
- `formats`: each receiver type's native message, one module per format;
- `trial`: the test notification the API sends a receiver on request.
"""
