"""Rules: the declarative early-warning catalog, feature computation, signals, alerts, backtests."""

# Withdrawing evidence registers its consent.policy.on_grant_stopped callback when imported;
# importing it here makes every process that loads screening's tables (the app, workers, the
# CLI) honour it, as notify does for its outbox.
from rules import withdraw as _withdraw  # noqa: F401
