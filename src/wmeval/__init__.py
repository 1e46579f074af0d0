"""wmeval: judge robot policies offline in an action-controllable video world model."""

__version__ = "0.1.0"
