"""OTLP receivers: HTTP and gRPC, protobuf and JSON, decoded once into SignalBatches."""
