"""The network shells: dashboard and MCP server."""
