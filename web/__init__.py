"""HTTP layer: the Starlette app, its routes, security and templates."""
