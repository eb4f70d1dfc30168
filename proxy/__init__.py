"""The proxy process: the hot path serving /v1/* for clients (see README, Status)."""
