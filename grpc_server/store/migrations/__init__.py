"""PostgreSQL schema migrations, applied in file-name order by grpc_server.store.migrate."""
