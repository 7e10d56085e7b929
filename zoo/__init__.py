"""The jaxzoo model families, one file each, plus a registry that names them.

Every model is a pair of pure functions (``init``, ``apply``) plus a ``loss``; see
``docs/architecture.md`` for the contract.
"""
