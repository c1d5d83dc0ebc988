"""The command verbs. Each takes the settings and a target first, options after, and reports through listeners."""
