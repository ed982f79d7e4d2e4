"""The HTTP side: the REST API, the staff routes, the OpenAPI document and the REST limits.

Handlers here parse and answer; the rules and SQL they apply live in `server.book`."""
