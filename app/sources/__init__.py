"""Source data about a child, as fetched from upstream systems under a consent grant."""
