"""Generated gRPC stubs of proto/nightjar/v1 (tools/gen_protos.py). DO NOT EDIT."""
