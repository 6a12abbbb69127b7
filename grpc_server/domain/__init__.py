"""Pure domain logic: no I/O, table-tested."""
