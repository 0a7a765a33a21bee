"""The side panels: the model tree and the method panel."""
