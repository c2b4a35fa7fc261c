"""quectel-privacy-agent: an on-device privacy agent for Quectel cellular/GNSS modules."""

__version__ = "0.1.0"
