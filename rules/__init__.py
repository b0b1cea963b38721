"""Rules: the declarative early-warning catalog, feature computation, signals, alerts, backtests."""
