"""``python -m mds``: a command-line client of the MDS API, for people who live in a terminal.

It talks HTTP to a running server with an API token, as curl does, and imports nothing of the server (no Django):
it runs from any Python with ``requests`` and ``rich``.
"""
