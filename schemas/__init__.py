"""Argument schemas of every block, and the field types they are made of."""
