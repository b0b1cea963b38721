"""tsunagu composition root: settings, database, the FastAPI app, the CLI, staff console, audit."""
