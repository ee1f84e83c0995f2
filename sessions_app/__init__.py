"""Chat sessions and their messages, the REST API, and the chat page."""
