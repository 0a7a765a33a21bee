"""Importing this module registers every built-in criterion and granularity (in the order the GUI
lists them)."""
from engine.pruning import criteria  # noqa: F401  l1, l2, random
from engine.pruning import gradient_criteria  # noqa: F401  gradient, taylor
from engine.pruning import bn_gamma  # noqa: F401
from engine.pruning import obd  # noqa: F401
from engine.pruning import granularities  # noqa: F401
