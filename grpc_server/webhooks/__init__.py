"""Signed webhooks (Standard Webhooks): the pieces a delivery is made of, and delivering them.

- events: the event a job's end becomes (`event_body`), its type, a new `webhook-id`;
- envelope: the job's envelope as the event carries it, rendered by the server;
- outbox: which event (if any) the store writes with a job's terminal state (a WebhookPlan);
- signing: the `webhook-*` headers of one attempt, signed with every secret of a rotation;
- schedule: what to do after an attempt (deliver again at T, give up, disable the endpoint);
- sender: one POST of a signed event to an endpoint, returning the attempt's record;
- deliverer: the loop that claims due events from the store, sends them, records attempts;
- endpoints: the configured endpoint a job names, and whether a submit may name it;
- admin: listing and redelivering an endpoint's events (admins only, gRPC).
"""
