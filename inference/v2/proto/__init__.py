"""The Open Inference Protocol's gRPC definition and the Python modules grpcio-tools generates from it."""
