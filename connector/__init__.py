"""The InstaMsg connector: every InstaMsg API operation as a block behind one dispatcher."""

__version__ = "1.0.0"
