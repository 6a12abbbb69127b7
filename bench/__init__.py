"""Benchmarks of asyncgate's submit paths against bare baselines: `python -m bench`.

Every figure comes from real subprocesses (gRPC server, REST bridge, baselines) on
this machine; the load generator runs in the bench process itself.
"""
