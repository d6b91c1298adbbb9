"""Images: the model that follows the engine, and list/remove/tag/prune/pull."""
