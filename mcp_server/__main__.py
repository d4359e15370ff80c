"""`python -m mcp_server`: the stdio MCP server (or `python -m mcp_server token ...`)."""

import sys

from .cli import main

sys.exit(main())
