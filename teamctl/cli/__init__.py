"""The teamctl command line: the parser, the commands and their shared context."""
