"""The import pipeline: folders, ZIP archives, images and videos into patients, examinations,
videos and frames. `service.import_sources` is the one entry point, used by the Celery task and by
the `import_frames` management command alike."""
