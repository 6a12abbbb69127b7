"""Signed webhooks (Standard Webhooks): the pieces a delivery is made of.

- events: the event a job's end becomes (`event_body`), its type, a new `webhook-id`;
- signing: the `webhook-*` headers of one attempt, signed with every secret of a rotation;
- schedule: what to do after an attempt (deliver again at T, give up, disable the endpoint);
- sender: one POST of a signed event to an endpoint, returning the attempt's record;
- endpoints: the configured endpoint a job names, and whether it wants an event.

Storing events and their attempts (the outbox, written with the job's terminal state) is
the job store's work; it calls these.
"""
