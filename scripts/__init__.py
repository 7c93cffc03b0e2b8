"""Developer scripts (bootstrap, host lookup, demo). Not part of the node pack."""
