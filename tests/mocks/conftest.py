"""The LINE stand-in fixtures (tests/line_standin.py) for the stand-in's own tests."""

from tests.line_standin import messaging, sink_server, standin, standin_server

__all__ = ["messaging", "sink_server", "standin", "standin_server"]
