"""The demo world: a fictional municipality's upstream systems and a school year of their records."""
