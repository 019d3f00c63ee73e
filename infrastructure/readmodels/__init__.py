"""Read models (CQRS): SQL tables projected from the event log, queried by reports, the CLI and the HTTP API."""
