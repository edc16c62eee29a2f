"""Staff: accounts, sign-in sessions and the audit trail."""
