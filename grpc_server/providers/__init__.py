"""Provider adapters behind one protocol; `provider/model` picks the adapter."""
