"""The api process: management REST API and the built dashboard (see README, Status)."""
