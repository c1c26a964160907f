"""Label schemas (tasks, choices, presets) and annotations with optimistic concurrency,
idempotent submits and history; review/adjudication and work queues come next."""
