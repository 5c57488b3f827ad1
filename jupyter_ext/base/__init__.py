"""The base layer: host facts and file helpers that every other layer may use (imports nothing above `errors`)."""
