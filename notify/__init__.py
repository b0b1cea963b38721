"""Notify: LINE webhook, account linking, support-resource directory, universal notices, the outbox."""

# The outbox registers its consent.policy.on_grant_stopped callback when imported; importing it
# here makes every process that loads notify's tables (the app, workers, the CLI) honour it.
from notify import outbox as _outbox  # noqa: F401
