"""Shared infrastructure: the database, the Temporal connection and converter, logging.

Owned by neither the entry points (``starter``, ``worker``) nor ``activities``: both use it.
Nothing here imports workflows, activities or starter.
"""
