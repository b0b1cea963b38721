"""The audit log: who used or changed what about which child, when and for what purpose."""
