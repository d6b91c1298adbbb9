"""Containers: the model that follows the engine, and the lifecycle verbs."""
