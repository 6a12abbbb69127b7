"""Generated protobuf and gRPC code for asyncgate."""
