"""The Open Inference Protocol ("V2", as KServe, Triton and MLServer speak it) over REST and gRPC.

``rest`` and ``urls`` serve ``/v2/...`` in the Django app; ``grpc_server`` serves ``inference.GRPCInferenceService``
beside it in the inference server's process; both reduce a request to a feature matrix (``tensors``; a calendar
version's timestamp tensor in ``timestamps``) and answer through ``service``, on the services ``/predict`` runs.
``proto/`` holds the protocol's gRPC definition and the Python modules generated from it.
"""
