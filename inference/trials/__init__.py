"""Live trials of a model's ``@challenger`` against its ``@champion``: routing on the request path (``routing``),
the evidence from paired feedback (``evidence``), and the services that start, evaluate and end them
(``services``). See docs/trials.md."""
