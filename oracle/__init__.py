"""PowerHive oracle: the off-chain services that run beside storage units (see SPEC §11)."""

__version__ = "0.1.0"
