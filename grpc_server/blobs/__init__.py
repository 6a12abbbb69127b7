"""Blob stores: where job inputs and outputs live beside the job rows (see base)."""
