"""The scheduler process: aggregation, anomalies, recommendations, partition upkeep."""
