"""The engine: runs a block, with no web framework. Faces call ``Engine.run``."""

from connector.engine.core import Answer, Engine, Outcome
from connector.engine.invocation import Invocation

__all__ = ["Answer", "Engine", "Invocation", "Outcome"]
