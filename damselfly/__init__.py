"""Command line and process wiring: `damselfly supernode|peer|up`. Logic lives in the packages it wires."""
