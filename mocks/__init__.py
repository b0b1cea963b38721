"""Stand-ins for systems outside the municipality; product code never imports this package."""
