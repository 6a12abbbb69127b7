"""Job stores: one protocol (base.py), several backends, one shared test suite."""
