"""The LINE platform stand-in and phone simulator (see mocks/line/app.py)."""
