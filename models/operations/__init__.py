"""District operations: imports, invitation batches, slots, check-in at the door, invariant checks."""
