"""API gateway: the REST API. Appends commands/events to the log; reads projections."""
