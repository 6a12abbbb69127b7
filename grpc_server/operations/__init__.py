"""Operations as slices: one module per operation (image edit, generation, variation,
embeddings) holding everything about it that is not shared: its field rules, its proto ->
domain conversion, how the dispatcher calls a provider for it and what of the answer is
kept. grpc_server.operations.registry lists them; the servicer, the submit path and the
dispatcher ask the registry instead of switching on the type.

Adding an operation: its params dataclass and RequestType value in domain/jobs.py, its
messages and RPC in protos/, a module here registered in registry.py, its Provider method
in providers/base.py (and the adapters that offer it), its servicer method (one line), and
its REST route in rest_bridge/operations.py.
"""
