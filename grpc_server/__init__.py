"""asyncgate gRPC server: validation, job state, persistence, dispatch, TTL."""
