"""Tests of the demo world: generator, calendar, loader and the seed command."""
