"""Pure building blocks of jaxzoo: activations, losses, initializers, layers, gradient
checking, hand-written backprop, optimizers, schedules and recurrent cells.

Import the submodules you need, e.g. ``from functional import layers, losses``.
"""
