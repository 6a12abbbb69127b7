"""asyncgate REST bridge: the gateway's async-jobs HTTP API over the gRPC service."""
