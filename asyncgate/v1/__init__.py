"""Generated from protos/asyncgate/v1. Do not edit."""
