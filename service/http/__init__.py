"""The HTTP layer: CDS Hooks views, request bodies and schemas, OpenAPI, health, metrics and error
answers."""
