"""Benchmarks of asyncgate against bare baselines: `python -m bench`.

Submit paths (REST, gRPC) and upload memory; jobs end to end (embeddings against a
provider that answers at once, image generations by the local model); PostgreSQL next
to SQLite, NOTIFY-driven dispatch and two replicas. Every figure comes from real
subprocesses (gRPC servers, REST bridges, baselines, the fake provider) on this
machine; the load generator runs in the bench process itself.
"""
