"""The dataplane: one call envelope and the model operations, under every front door.

Front doors (``service/protocols/``) only decode a request, call the dataplane and encode
its answer; ``plane.py`` holds what they call, ``call.py`` the record of one call.
"""
