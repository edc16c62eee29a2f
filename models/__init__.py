"""Tables and the domain operations that change them. Knows nothing of HTTP."""
