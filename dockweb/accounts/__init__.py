"""Teams, memberships with roles, personal API tokens and the object-level permission checks."""
