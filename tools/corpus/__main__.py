"""``python -m tools.corpus``: the corpus MCP server over stdio."""

from tools.corpus.server import main

if __name__ == "__main__":
    main()
