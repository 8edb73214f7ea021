"""The InstaMsg connector: every InstaMsg API operation as a block, run by one engine."""

__version__ = "1.0.0"
