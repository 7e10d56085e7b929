"""Training side of jaxzoo: datasets, the train loop, checkpoints, experiments and the CLI.

This is the only package that does I/O, prints, or reads the clock.
"""
