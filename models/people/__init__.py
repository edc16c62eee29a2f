"""People: personal data and its protection, first-dose records, personal links, finding a person."""
